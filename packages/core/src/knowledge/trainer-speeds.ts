import type { BaseModelId } from "./base-models.js";
import type { Sourced } from "./types.js";

/**
 * External trainers' speed, measured by us on the same H200 as the built-in trainer's rows
 * (knowledge/train-speed.ts), with the configs loraspec's own compilers write. 1024², batch 1,
 * LoRA rank 16 / alpha 16 on every linear of the transformer (each trainer's default), AdamW, SDPA,
 * cached latents and text outputs, no checkpointing (the plan times checkpointing with the built-in
 * trainer's ratio; each row's `config` says so). Seconds per step: steady state (Kohya: from its
 * epoch timestamps, its tqdm mean in the note; ai-toolkit: per-line stamps over the window its
 * config names, `steady_s_per_step` of the jsonl).
 */
export interface TrainerSpeedRecord extends Sourced {
  trainer: "kohya" | "ai-toolkit";
  base: BaseModelId;
  gpu: "h200";
  resolution: number;
  batch: number;
  gradientCheckpointing: boolean;
  /** How the frozen base was held: bf16, or the trainer's own fp8 (ai-toolkit: optimum-quanto qfloat8). */
  quantize: "none" | "fp8";
  secondsPerStep: number;
  /** What the row ran, and what it did not that the plan takes from elsewhere. */
  config: string;
  /** LoRA modules the trainer's log reported, where the bench kept it. */
  modules?: number;
  /** torch.cuda.max_memory_allocated of the run, GiB, where the bench read it. */
  peakAllocGib?: number;
}

const KOHYA_LOG = "bench/data/kohya-h200-2026-11-29.log (sd-scripts v0.10.1 ae72efb, bench/RESULTS.md 'Versus Kohya sd-scripts')";
const AITK = "ai-toolkit 0.12.26 27a03a9, bench/RESULTS.md 'Versus ai-toolkit (issue 22)'";
const AITK_FLUX1 = `bench/data/aitk-h200-2026-12-02-flux1-valid.jsonl (log bench/data/aitk-h200-2026-12-02-flux1-valid.log; ${AITK})`;
const AITK_FLUX1_FP8 = `bench/data/aitk-h200-2026-12-02-flux1-valid.jsonl (log bench/data/aitk-h200-2026-12-02-flux1-fp8.log; ${AITK})`;
const AITK_KLEIN = `bench/data/aitk-h200-2026-12-02.jsonl (log bench/data/aitk-h200-2026-12-02-klein4b.log; ${AITK})`;
const NO_CKPT = "checkpointing not measured: the plan takes the built-in trainer's ratio";

export const TRAINER_SPEEDS: readonly TrainerSpeedRecord[] = [
  { trainer: "kohya", base: "sdxl", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "none", secondsPerStep: 1.15, config: `our compiled config, 722 modules (Kohya's default); ${NO_CKPT}`, modules: 722, source: KOHYA_LOG, asOf: "2026-11-29", note: "tqdm mean 1.19" },
  { trainer: "kohya", base: "flux1-dev", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "none", secondsPerStep: 0.83, config: `our compiled config, 304 fused modules of all blocks (Kohya's default); ${NO_CKPT}; the fp8 base likewise`, modules: 304, source: KOHYA_LOG, asOf: "2026-11-29", note: "tqdm mean 0.88" },
  { trainer: "ai-toolkit", base: "flux1-dev", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "none", secondsPerStep: 0.792, config: `our compiled job, bf16 base, text embeddings cached, cuDNN SDPA off, steady over steps 20-60; ${NO_CKPT}`, modules: 494, peakAllocGib: 71.9, source: AITK_FLUX1, asOf: "2026-12-02", note: "median 0.807; ai-toolkit's own rate 0.83 s/it" },
  { trainer: "ai-toolkit", base: "flux1-dev", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "fp8", secondsPerStep: 0.852, config: `our compiled job, qfloat8 base (optimum-quanto), text embeddings cached, cuDNN SDPA off, a 15-step memory row, steady over steps 5-15; ${NO_CKPT}`, modules: 494, peakAllocGib: 69.8, source: AITK_FLUX1_FP8, asOf: "2026-12-02", note: "median 0.938: a shorter window than the bf16 row's" },
  { trainer: "ai-toolkit", base: "flux2-klein-4b", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "none", secondsPerStep: 0.361, config: `our compiled job, bf16 base, low_vram, text embeddings cached, 80 modules (klein's blocks fuse qkv and the MLP), steady over steps 20-60; ${NO_CKPT}; the fp8 base takes ai-toolkit's FLUX.1 fp8/bf16 ratio`, modules: 80, peakAllocGib: 28.3, source: AITK_KLEIN, asOf: "2026-12-02", note: "median 0.363" },
];

/**
 * How a step's time moves from the H200 to another card. The share of the H200 step that is
 * bf16 GEMM work is the step's counted FLOPs at the GEMM rate measured on that card
 * (H200_GEMM_TFLOPS) over the step's time: it follows dense bf16 throughput. Of the rest,
 * `bandwidthShare` follows memory bandwidth (norms, elementwise, attention traffic) and the
 * remainder is fixed (Python, kernel launches, the data loader). Ours, from one card: a FLUX-class
 * step's non-GEMM time is taken as half memory traffic; an SDXL step without a CUDA graph spends
 * ~0.4 s of ~0.5 s in Python and launches (bench/RESULTS.md), so 0.2. The ordering is monotone by
 * construction: a card at least as fast in both datasheet figures never gets a longer time.
 */
export interface GpuScalingRecord extends Sourced {
  /** Share of the non-GEMM time that follows memory bandwidth; the rest is fixed. */
  bandwidthShare: number;
}

const BENCH = "ours: bench/RESULTS.md 'Training speed on the GPU' (÷ floor ratios; SDXL eager launch-bound), one card measured";

export const GPU_SCALING: Readonly<Record<"gpuBound" | "launchBound", GpuScalingRecord>> = {
  gpuBound: { bandwidthShare: 0.5, source: BENCH, asOf: "2026-12-02", verified: false },
  launchBound: { bandwidthShare: 0.2, source: BENCH, asOf: "2026-12-02", verified: false },
};

/** bf16 GEMM rate measured on the H200 in the bench runs (8192³: 746-783 TFLOP/s). */
export const H200_GEMM_TFLOPS: Sourced & { tflops: number } = {
  tflops: 770,
  source: "bench/gpu-speed.py (bench/RESULTS.md: bf16 GEMM 747-774 TFLOP/s run 1, 770-783 run 2)",
  asOf: "2026-11-29",
};
