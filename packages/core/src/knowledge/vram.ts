import type { Sourced } from "./types.js";

/**
 * Constants of the additive VRAM model (perf-reliability.md §2.2):
 * VRAM ≈ W_dit·(1−s) + W_te + W_vae + M_lora + A + O.
 * Activation and overhead constants are ours, calibrated on the §2.3 test cases
 * (Flux fp8 1024 r16 cached ckpt bs1 ≈ 18-19 GB; Flux NF4 1024 ≥ 12 GB; SDXL LoRA 1024 cached 8-10 GB).
 */
const P2 = "shared/reference/perf-reliability.md §2.2-2.3";

export const VRAM_MODEL = {
  /** Bytes per base weight by quantisation. */
  bytesPerWeight: { none: 2.0, fp8: 1.0, int8: 1.0, nf4: 0.56 } as const,
  /** fp32 training keeps fp32 base weights when not quantised. */
  fp32BytesPerWeight: 4.0,
  /** Bytes per LoRA parameter: weights + grads + optimizer states. */
  loraBytesPerParam: { adamw: 16, adamw8bit: 10, lion8bit: 8, adafactor: 10, prodigy: 20 } as const,
  /** Activations with gradient checkpointing: fixed part + MB per token per sample, at FLUX.1 width x depth. */
  activationFixedGb: 0.15,
  activationMbPerTokenFlux: 0.9,
  /** FLUX.1 width x depth the per-token figure was fitted at. */
  fluxHiddenTimesBlocks: 3072 * 57,
  /** Without checkpointing: β·T·d·L with β≈14 vs the checkpointed fit (ratio ~2.7). */
  noCheckpointFactor: 2.7,
  /** VAE resident when latents are not cached (weights + 1024² encode), GB. */
  vaeGb: 1.5,
  /** CUDA context, workspaces, fragmentation: fixed GB plus a fraction of the rest. */
  overheadGb: 1.0,
  overheadFraction: 0.05,
  source: `${P2}; activation/overhead constants ours, calibrated on the §2.3 test cases`,
  asOf: "2026-11-29",
} as const satisfies Sourced & Record<string, unknown>;

/** Published VRAM facts the guide lists (kept as records so lint messages and docs can cite them). */
export interface VramFact {
  id: string;
  fact: string;
  gb: number;
  source: string;
  asOf: string;
}

export const VRAM_FACTS: readonly VramFact[] = [
  {
    id: "sdxl-lora-min",
    fact: "SDXL LoRA needs 10 GB minimum at batch 1 with gradient checkpointing and AdamW8bit (8 GB possible at dim 4-8)",
    gb: 10,
    source: "shared/reference/perf-reliability.md §1.2 (sd-scripts docs/train_SDXL-en.md)",
    asOf: "2026-08-23",
  },
  { id: "sdxl-lora-comfortable", fact: "SDXL LoRA is comfortable at 16-24 GB", gb: 16, source: "loraspec issue #2 (source guide); diffusers README_sdxl.md \"< 16GB\"", asOf: "2026-04-30" },
  {
    id: "sdxl-fused-backward",
    fact: "SDXL full fine-tune with the fused backward pass: ~17 GB fp32 / ~10 GB bf16 at batch 1 (not effective for LoRA)",
    gb: 17,
    source: "shared/reference/perf-reliability.md §1.2 (sd-scripts PR #1259, README f3d2cf22)",
    asOf: "2026-08-23",
  },
  {
    id: "flux-24gb-recipe",
    fact: "FLUX.1 LoRA on 24 GB: 8-bit/fp8 base (ai-toolkit quantize: true, kohya --fp8_base), cached text encoders, gradient checkpointing; kohya fits batch 2 at 1024",
    gb: 24,
    source: "shared/reference/perf-reliability.md §1.2 (ai-toolkit config/examples/train_lora_flux_24gb.yaml; sd-scripts docs/flux_train_network.md §6.1)",
    asOf: "2026-08-23",
  },
];
