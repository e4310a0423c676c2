import type { BaseModelId } from "./base-models.js";
import type { Sourced } from "./types.js";

/**
 * External trainers' speed, measured by us on the same H200 as the built-in trainer's rows
 * (knowledge/train-speed.ts), with the configs loraspec's own compilers write. 1024², batch 1,
 * LoRA rank 16 / alpha 16, AdamW, bf16 base, SDPA, cached latents and text outputs, no
 * checkpointing. Seconds per step: steady state from Kohya's epoch timestamps (its tqdm mean in
 * the note).
 */
export interface TrainerSpeedRecord extends Sourced {
  trainer: "kohya" | "ai-toolkit";
  base: BaseModelId;
  gpu: "h200";
  resolution: number;
  batch: number;
  gradientCheckpointing: boolean;
  quantize: "none" | "fp8";
  secondsPerStep: number;
}

const KOHYA_LOG = "bench/data/kohya-h200-2026-11-29.log (sd-scripts v0.10.1 ae72efb, bench/RESULTS.md 'Versus Kohya sd-scripts')";

export const TRAINER_SPEEDS: readonly TrainerSpeedRecord[] = [
  { trainer: "kohya", base: "sdxl", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "none", secondsPerStep: 1.15, source: KOHYA_LOG, asOf: "2026-11-29", note: "tqdm mean 1.19" },
  { trainer: "kohya", base: "flux1-dev", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "none", secondsPerStep: 0.83, source: KOHYA_LOG, asOf: "2026-11-29", note: "tqdm mean 0.88" },
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
