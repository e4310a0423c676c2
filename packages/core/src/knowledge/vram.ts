import type { BaseModelId, ModelFamily } from "./base-models.js";
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
   * kohya / ai-toolkit over the built-in trainer's fit: the published points of §2.3 sit 2-3 GB
   * above it (SimpleTuner FLUX r16 bf16/int8/int4 ">30/>18/>13 GB" vs 28/15.5/10; kohya SDXL dim
   * 4-8 "8 GB" vs 6.9). ai-toolkit measured (TRAINER_SPEEDS, 2026-12-02): 0.6-1.3 GB above the
   * built-in fit with the all-linear extra and its fp8 base's kept inputs, so this still covers it.
   * Not added where the trainer's own measured peak stands in (VRAM_PEER_ALL_LINEAR: Kohya, no checkpointing).
   */
  externalTrainerGb: 2.5,
  source: `${P2}; activation, compile, context and overhead constants fitted on ${BENCH}`,
  asOf: "2026-11-29",
} as const satisfies Sourced & Record<string, unknown>;

/**
 * The built-in trainer's sample graph (BUILTIN_TRAINER.sampleGraph: SDXL's in-training samples replay the
 * UNet forward from one CUDA graph): its private pool keeps the forward's intermediates at the samples'
 * batch 2 (CFG) reserved for the rest of the run, GB. Not measured yet (the worker logs the pool's size
 * when it captures: "sample graph captured ... pool").
 */
export const SAMPLE_GRAPH_VRAM = {
  gb: 0.5,
  source:
    "estimate: SDXL UNet forward at batch 2, 1024² latents (128²), bf16: skip connections ~0.13 GB + the largest block's transients (64² attention FF, fp32 LoRA inputs) ~0.3 GB",
  asOf: "2026-12-03",
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
 * Selective activation checkpointing (the built-in trainer's checkpointing_mode selective,
 * BUILTIN_TRAINER.selectiveCheckpointingKeep): full checkpointing's kept inputs plus what the policy
 * keeps inside each block, in hidden-wide tensors per token: FLUX.1 keeps each block's attention output
 * (the joint stream of a double block, the single block's; tokens x hidden, bf16), so selective costs
 * tokens x hidden x blocks x keptPerBlock x bytesPerElement over full checkpointing (plan/vram-model.ts).
 * Measured on the H200 (2026-12-06, rows 42 and 43 of the source, compile + fp8 GEMMs + LoRA bf16, FA4):
 * 3.58 -> 5.57 B per token x hidden x block, +1.995 B (the bench's activation_bytes_per_token_hidden_block),
 * peak 24.74 -> 26.24 GiB. The matmul+attention policy of before kept 33.5 B (2026-12-02; 42.1 GiB on
 * 2026-12-06, about no checkpointing's 42.3): it is not the product's and has no record here.
 */
export interface SelectiveActivationRecord extends Sourced {
  /** What the policy keeps in each block beyond its input, in words. */
  kept: string;
  /** Tensors of tokens x hidden kept per block and sample. */
  keptPerBlock: number;
  /** Bytes per kept element (the bf16 activations). */
  bytesPerElement: number;
}

export const VRAM_SELECTIVE_ACTIVATIONS: Readonly<Partial<Record<ModelFamily, SelectiveActivationRecord>>> = {
  flux1: {
    kept: "each block's attention output",
    keptPerBlock: 1,
    bytesPerElement: 2,
    source:
      "bench/gpu-speed.py --only flux1 --configs 13,42,43,44 --attention fa4 --steps 30, bench/data/gpu-speed-h200-2026-12-06-flux1-ckpt-selective-fa4.jsonl lines 3-4 (rows 42 and 43: activation_bytes_per_token_hidden_block 3.58 -> 5.57)",
    asOf: "2026-12-06",
  },
};

/**
 * Extra activation memory of the built-in trainer's LoRA on every linear of the blocks (the all-linear
 * preset; ai-toolkit's default too) over the attention preset: the adapted MLP and output projections keep
 * their inputs for the LoRA's backward (the MLP down-projection's is 3-4x wide), with peft's fp32 LoRA path.
 * Measured without checkpointing as the all-linear peak over the TRAIN_SPEEDS row of the same base and config
 * (attention preset, batch 1, 1024²); the plan scales it per token x hidden x block to other
 * models of the family. With checkpointing the blocks' insides are recomputed (none counted).
 * Other FLUX-class families take FLUX.1's. A peer trainer with its own measured record
 * (VRAM_PEER_ALL_LINEAR: Kohya) takes that instead.
 */
export interface AllLinearExtraRecord extends Sourced {
  base: BaseModelId;
  /** The attention row's config in TRAIN_SPEEDS (no checkpointing, batch 1) the all-linear row re-ran. */
  attentionConfig: string;
  /** torch.cuda.max_memory_allocated of the all-linear row, GiB. */
  allLinearPeakGib: number;
}

export const VRAM_ALL_LINEAR_EXTRA: Readonly<Partial<Record<ModelFamily, AllLinearExtraRecord>>> = {
  sdxl: {
    base: "sdxl",
    attentionConfig: "eager",
    allLinearPeakGib: 14.88,
    source:
      "bench/gpu-speed.py --only sdxl --configs 0,32 --targets all-linear --steps 30, bench/data/gpu-speed-h200-2026-12-05-same-lease2.jsonl (H200, issue 22's second 2026-12-05 lease, 722 modules: proj_in/proj_out, attention and feed-forward of every transformer block)",
    asOf: "2026-12-05",
    note: "eager, against the eager attention row (12.53 GiB; 12.534 again on 2026-12-03)",
  },
  flux1: {
    base: "flux1-dev",
    attentionConfig: "fast + fp8 GEMMs",
    allLinearPeakGib: 62,
    source: "issue 22 (H200, 2026-12-02, bench/gpu-speed.py --configs 0,4,10,20 --steps 30, re-timed with every linear of the transformer blocks: 495 modules)",
    asOf: "2026-12-02",
    note: "compiled; klein's eager and compiled extras agree within 0.02 GiB, so eager trainers take it as is",
  },
  flux2: {
    base: "flux2-klein-4b",
    attentionConfig: "eager",
    allLinearPeakGib: 26.3,
    source: "bench/gpu-speed.py --only klein4b --configs 16,17 --targets all-linear --steps 30, bench/data/gpu-speed-h200-2026-12-02-klein4b-all-linear.md (H200, 2026-12-02 20:11 UTC, 100 modules)",
    asOf: "2026-12-02",
    note: "compiled: 23.7 vs 18.97 GiB, the same 4.7 GiB extra",
  },
};

/**
 * A peer trainer's LoRA on every linear of the blocks (its default), measured in its own run: what its peak keeps over
 * the built-in trainer's attention row of the same base (TRAIN_SPEEDS `attentionConfig`: batch 1, no checkpointing),
 * bytes per token x hidden x block, from its TRAINER_SPEEDS row (bf16 base, batch 1, no checkpointing;
 * plan/vram-extras.ts peerAllLinearBytesPerTokenHiddenBlock). For that trainer and family it stands in for the
 * built-in trainer's all-linear extra (VRAM_ALL_LINEAR_EXTRA: peft's unfused modules, fp32 LoRA path) and for the
 * published-figures allowance (VRAM_MODEL.externalTrainerGb): the measured peak holds both. Without checkpointing
 * only; attention-mlp and module lists beyond attention take it as all-linear, as the built-in extra.
 *
 * Kohya (sd-scripts networks/lora_flux.py, networks/lora.py) trains 304 fused FLUX.1 modules (one LoRA per qkv and per
 * single-block linear1, so one kept input each) and its own 722 SDXL modules under bf16 autocast (no fp32 copies of the
 * inputs), in its own model code (FLUX.1: BFL's flux_models.py, whose RoPE and QK norms run in fp32); neither the
 * built-in's extra (FLUX.1 +17.4 GiB over attention, fp32 copies of 494 inputs) nor its bf16 saving says what that
 * keeps, so it is measured: FLUX.1 63.3 GiB over 50.08 (+13.2), SDXL 13.6 over 12.53 (+1.1).
 */
export interface PeerAllLinearRecord extends Sourced {
  base: BaseModelId;
  /** The built-in trainer's attention row (TRAIN_SPEEDS config, batch 1, no checkpointing) the peer's peak is taken over. */
  attentionConfig: string;
}

export const VRAM_PEER_ALL_LINEAR: Readonly<Partial<Record<"kohya" | "ai-toolkit", Partial<Record<ModelFamily, PeerAllLinearRecord>>>>> = {
  kohya: {
    sdxl: {
      base: "sdxl",
      attentionConfig: "eager",
      source: "TRAINER_SPEEDS kohya sdxl (bench/data/kohya-h200-2026-12-05-same-lease2.jsonl: peak_alloc_gib 13.64, sd-scripts v0.10.1 sdxl_train_network.py, 722 modules, bf16 autocast) over TRAIN_SPEEDS sdxl eager (12.53 GiB)",
      asOf: "2026-12-05",
    },
    flux1: {
      base: "flux1-dev",
      attentionConfig: "eager",
      source: "TRAINER_SPEEDS kohya flux1-dev (bench/data/kohya-h200-2026-12-05-same-lease2.jsonl: peak_alloc_gib 63.31, sd-scripts v0.10.1 flux_train_network.py, 304 fused modules, bf16 autocast) over TRAIN_SPEEDS flux1-dev eager (50.08 GiB)",
      asOf: "2026-12-05",
    },
  },
};

/**
 * A peer trainer's quantised base that keeps more than its weights' bytes say, bytes per token x
 * hidden x block per sample, without checkpointing. ai-toolkit's qfloat8 base (optimum-quanto)
 * measured 2.1 GiB under its bf16 row (69.8 vs 71.9 GiB, TRAINER_SPEEDS) where 1 B per weight
 * saves 11.9 GB: ~9.6 GB more is kept. That is what quanto's linear keeps: its autograd function
 * saves each quantised linear's bf16 input for the backward whether or not the weight trains
 * (optimum-quanto tensor/weights/qbytes.py WeightQBytesLinearFunction.forward,
 * `ctx.save_for_backward(input, other)`); FLUX.1's distinct linear inputs count 12.7 B per token x
 * hidden x block (double blocks 7h per stream, single blocks 6h, 2 B). Held as activations (so
 * recomputed under checkpointing, not measured) rather than as weight bytes: as weight bytes the
 * 24 GB FLUX.1 recipe ai-toolkit publishes (quantize + checkpointing) would not fit.
 * qint8 takes the same quanto function (not measured); uint4 (torchao) is assumed alike; other
 * FLUX-class models take FLUX.1's figure; SDXL's UNet is not measured (none added). Kohya's fp8
 * base has no measured peak (its bench log kept none), so it has no record.
 */
export interface QuantizedBaseKeptRecord extends Sourced {
  bytesPerTokenHiddenBlock: number;
  quantizations: readonly ("fp8" | "int8" | "nf4")[];
}

export const VRAM_QUANTIZED_BASE_KEPT: Readonly<Partial<Record<"kohya" | "ai-toolkit", QuantizedBaseKeptRecord>>> = {
  "ai-toolkit": {
    bytesPerTokenHiddenBlock: 11.9,
    quantizations: ["fp8", "int8", "nf4"],
    source: "TRAINER_SPEEDS ai-toolkit FLUX.1 rows (bench/data/aitk-h200-2026-12-02-flux1-valid.jsonl, bf16 and qfloat8, 1024², batch 1, no checkpointing): ((71.95 - 69.83) GiB saved vs 11.9 GB of weight bytes) / (4608 x 3072 x 57)",
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
