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
 * How a step's time moves from the H200 to another card: a share that follows dense bf16
 * throughput, one that follows memory bandwidth, and a fixed share (Python, kernel launches, the
 * data loader) that no card changes. Ours, from the H200 bench: FLUX-class steps run at 1.8-2.7x
 * the bf16 GEMM floor (GEMMs and the memory-bound norms/elementwise/attention work), while an SDXL
 * step without a CUDA graph spends ~0.4 s of ~0.5 s in Python and launches. Both shares are
 * assumptions (one card measured); they keep the ordering monotone by construction: a card at
 * least as fast in both datasheet figures never gets a longer time.
 */
export interface GpuScalingRecord extends Sourced {
  compute: number;
  bandwidth: number;
  fixed: number;
}

const BENCH = "ours: bench/RESULTS.md 'Training speed on the GPU' (floor ratios; SDXL eager launch-bound), one card measured";

export const GPU_SCALING: Readonly<Record<"gpuBound" | "launchBound", GpuScalingRecord>> = {
  gpuBound: { compute: 0.6, bandwidth: 0.35, fixed: 0.05, source: BENCH, asOf: "2026-12-02", verified: false },
  launchBound: { compute: 0.1, bandwidth: 0.1, fixed: 0.8, source: BENCH, asOf: "2026-12-02", verified: false },
};
