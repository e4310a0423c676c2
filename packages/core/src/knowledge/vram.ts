import type { ModelFamily } from "./base-models.js";
import type { Sourced } from "./types.js";

/**
 * Constants of the additive VRAM model (perf-reliability.md §2.2):
 * VRAM ≈ W_dit·(1−s) + W_te + W_vae + M_lora + A + O, in GB (1e9 bytes).
 * Activations are bytes per (token x hidden x block) per sample, per family (VRAM_ACTIVATIONS);
 * overhead is the CUDA context plus a fragmentation allowance. Calibrated on the built-in
 * trainer's H200 measurements (TRAIN_SPEEDS: peak allocated + context) on 2026-11-29; before that
 * on the published §2.3 test cases, which it now puts 1-3 GB lower (see the plan tests).
 */
const P2 = "shared/reference/perf-reliability.md §2.2-2.3";
const BENCH = "bench/gpu-speed.py, bench/data/gpu-speed-h200-2026-11-29.jsonl";

export const VRAM_MODEL = {
  /** Bytes per base weight by quantisation (fp8 per-row scales are negligible). */
  bytesPerWeight: { none: 2.0, fp8: 1.0, int8: 1.0, nf4: 0.56 } as const,
  /** fp32 training keeps fp32 base weights when not quantised. */
  fp32BytesPerWeight: 4.0,
  /** Bytes per LoRA parameter: weights + grads + optimizer states. */
  loraBytesPerParam: { adamw: 16, adamw8bit: 10, lion8bit: 8, adafactor: 10, prodigy: 20 } as const,
  /** Regional torch.compile keeps fewer intermediates without checkpointing: SDXL 0.76, FLUX.1 0.78, klein 0.80 of eager's activations. */
  compileActivationFactor: 0.78,
  /** A whole-step CUDA graph keeps static input/output buffers: +0.35 GB at batch 1, +0.6 GB at batch 4 (SDXL). */
  cudaGraphsGb: 0.4,
  /** VAE resident when latents are not cached (weights + 1024² encode), GB. */
  vaeGb: 1.5,
  /** CUDA context (0.51 GiB measured), GB. */
  contextGb: 0.55,
  /** Fragmentation allowance on top of what the tensors take: the caching allocator's slack. */
  overheadFraction: 0.05,
  /**
   * kohya / ai-toolkit, not measured by us: the published points of §2.3 sit 2-3 GB above the
   * built-in trainer's fit (SimpleTuner FLUX r16 bf16/int8/int4 ">30/>18/>13 GB" vs 28/15.5/10;
   * kohya SDXL dim 4-8 "8 GB" vs 6.9), so they get this much more.
   */
  externalTrainerGb: 2.5,
  source: `${P2}; activation, compile, context and overhead constants fitted on ${BENCH}`,
  asOf: "2026-11-29",
} as const satisfies Sourced & Record<string, unknown>;

export interface ActivationRecord extends Sourced {
  /** Bytes per token x hidden x block per sample: without / with gradient checkpointing. */
  noCkpt: number;
  ckpt: number;
}

/**
 * Fitted as (peak allocated + context − weights − LoRA) / (tokens x hidden x blocks), bf16 base,
 * cached latents and text embeddings, 1024². With checkpointing what stays is each block's input
 * (2 B) plus one block recomputed. SDXL's "hidden x blocks" is the record's proxy (1280 x 70).
 */
export const VRAM_ACTIVATIONS: Readonly<Record<ModelFamily, ActivationRecord>> = {
  sdxl: { noCkpt: 22, ckpt: 3.1, source: `${BENCH} (SDXL UNet b1/b4 eager, b1 checkpointed)`, asOf: "2026-11-29" },
  flux1: { noCkpt: 35.4, ckpt: 1.8, source: `${BENCH} (FLUX.1 [dev] eager, checkpointed, fp8 + checkpointed)`, asOf: "2026-11-29" },
  flux2: {
    noCkpt: 40.5,
    ckpt: 1.8,
    source: `${BENCH} (klein 4B/9B eager: SwiGLU MLPs, ratio 3); checkpointed assumed as FLUX.1`,
    asOf: "2026-11-29",
  },
  "qwen-image": { noCkpt: 35.4, ckpt: 1.8, source: `${BENCH}: assumed as FLUX.1 (same MMDiT block layout), not measured`, asOf: "2026-11-29", verified: false },
  zimage: { noCkpt: 35.4, ckpt: 1.8, source: `${BENCH}: assumed as FLUX.1, not measured`, asOf: "2026-11-29", verified: false },
  sd3: { noCkpt: 35.4, ckpt: 1.8, source: `${BENCH}: assumed as FLUX.1, not measured`, asOf: "2026-11-29", verified: false },
};

/**
 * Selective activation checkpointing (the built-in trainer's checkpointing_mode selective: each
 * block's matmul and attention outputs kept, element-wise ops recomputed), bytes per token x hidden
 * x block per sample. Measured on the H200 (bench/gpu-speed.py rows 23-25, 2026-12-02): 33.5 B with
 * compile (35.4 without), against 35.4 B without checkpointing and 1.8 B with full checkpointing.
 * The estimate it replaces (20.5 B: q, k, v, attention output, output projection, MLP up/down of
 * diffusers' FluxTransformerBlock / FluxSingleTransformerBlock, transformer_flux.py) was far low:
 * the policy keeps every matmul output, and in these blocks they are most of what the backward needs.
 */
export const VRAM_SELECTIVE_ACTIVATIONS: Readonly<Partial<Record<ModelFamily, ActivationRecord & { selective: number }>>> = {
  flux1: {
    noCkpt: 35.4,
    ckpt: 1.8,
    selective: 33.5,
    source: "bench/gpu-speed.py --configs 13,23,24,25 (activation_bytes_per_token_hidden_block of the compiled selective rows), bench/data/gpu-speed-h200-2026-12-02-selective.jsonl",
    asOf: "2026-12-02",
  },
};

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
