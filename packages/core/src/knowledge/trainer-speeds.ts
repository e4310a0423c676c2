import type { BaseModelId } from "./base-models.js";
import type { Sourced } from "./types.js";

/**
 * External trainers' speed, measured by us on the same H200 as the built-in trainer's rows
 * (knowledge/train-speed.ts), with the configs loraspec's own compilers write. 1024², batch 1,
 * LoRA rank 16 / alpha 16 on every linear of the transformer (each trainer's default), AdamW, SDPA,
 * cached latents and text outputs, no checkpointing (the plan times checkpointing with the built-in
 * trainer's ratio; each row's `config` says so). Seconds per step: steady state, `steady_s_per_step` of
 * the jsonl (bench/peer-kohya.py, bench/peer-aitoolkit.py: per-line stamps over the window its config
 * names), the median and the trainer's own final rate in the note with the figure the row replaced.
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

const KOHYA = "sd-scripts v0.10.1 ae72efb";
const AITK = "ai-toolkit 0.12.26 27a03a9";
/**
 * Issue 22's second 2026-12-05 lease (H200, 04:51-05:09 UTC): ours, then ai-toolkit, then Kohya, one process at a time
 * (bench/RESULTS.md "The second 2026-12-05 lease"; the built-in rows of that lease: knowledge/train-speed.ts
 * TRAIN_SPEED_SOURCE_ALL_LINEAR_FA4). Steady s/step over steps 20-60 (the memory rows 5-15) from each line's arrival stamp.
 */
const LEASE2 = "bench/RESULTS.md 'The second 2026-12-05 lease'";
const AITK_LEASE2 = (log: string) => `bench/data/aitk-h200-2026-12-05-same-lease2.jsonl (log bench/data/aitk-h200-2026-12-05-same-lease2-${log}.log; ${AITK}, ${LEASE2})`;
const KOHYA_LEASE2 = (log: string) => `bench/data/kohya-h200-2026-12-05-same-lease2.jsonl (log bench/data/kohya-h200-2026-12-05-same-lease2-${log}.log; ${KOHYA}, ${LEASE2})`;
/** The rows these replaced (one row per trainer, model and base precision: the plan reads the first). */
const KOHYA_1129 = "2026-11-29 (bench/data/kohya-h200-2026-11-29.log, from its epoch timestamps)";
const AITK_1202 = "2026-12-02 (bench/data/aitk-h200-2026-12-02";
const NO_CKPT = "checkpointing not measured: the plan takes the built-in trainer's ratio";

export const TRAINER_SPEEDS: readonly TrainerSpeedRecord[] = [
  { trainer: "kohya", base: "sdxl", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "none", secondsPerStep: 1.037, config: `our compiled config, 722 modules (Kohya's default), steady over steps 20-60 with Kohya's data loader inside the window; ${NO_CKPT}`, modules: 722, peakAllocGib: 13.6, source: KOHYA_LEASE2("sdxl"), asOf: "2026-12-05", note: `median 0.785; tqdm's final rate 1.10 s/it; was 1.15 on ${KOHYA_1129}` },
  { trainer: "kohya", base: "flux1-dev", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "none", secondsPerStep: 0.784, config: `our compiled config, 304 fused modules of all blocks (Kohya's default), steady over steps 20-60 with Kohya's data loader inside the window; ${NO_CKPT}; the fp8 base likewise`, modules: 304, peakAllocGib: 63.3, source: KOHYA_LEASE2("flux1"), asOf: "2026-12-05", note: `median 0.722; tqdm's final rate 0.84 s/it; was 0.83 on ${KOHYA_1129}` },
  { trainer: "ai-toolkit", base: "flux1-dev", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "none", secondsPerStep: 0.769, config: `our compiled job, bf16 base, text embeddings cached, cuDNN SDPA off, steady over steps 20-60; ${NO_CKPT}`, modules: 494, peakAllocGib: 71.9, source: AITK_LEASE2("flux1"), asOf: "2026-12-05", note: `median 0.782; ai-toolkit's own rate 0.81 s/it; was 0.792 on ${AITK_1202}-flux1-valid.jsonl), 0.764 in the first 2026-12-05 lease (bench/data/aitk-h200-2026-12-05-same-lease.jsonl)` },
  { trainer: "ai-toolkit", base: "flux1-dev", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "fp8", secondsPerStep: 0.869, config: `our compiled job, qfloat8 base (optimum-quanto), text embeddings cached, cuDNN SDPA off, a 15-step memory row, steady over steps 5-15; ${NO_CKPT}`, modules: 494, peakAllocGib: 69.8, source: AITK_LEASE2("flux1-fp8"), asOf: "2026-12-05", note: `median 0.946: a shorter window than the bf16 row's; ai-toolkit's own rate 1.07 s/it; was 0.852 on ${AITK_1202}-flux1-valid.jsonl)` },
  { trainer: "ai-toolkit", base: "flux2-klein-4b", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "none", secondsPerStep: 0.375, config: `our compiled job, bf16 base, low_vram, text embeddings cached, 80 modules (klein's blocks fuse qkv and the MLP), steady over steps 20-60; ${NO_CKPT}`, modules: 80, peakAllocGib: 28.3, source: AITK_LEASE2("klein4b"), asOf: "2026-12-05", note: `median 0.378; ai-toolkit's own rate 0.40 s/it; was 0.361 on ${AITK_1202}.jsonl)` },
  { trainer: "ai-toolkit", base: "flux2-klein-4b", gpu: "h200", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "fp8", secondsPerStep: 0.39, config: `our compiled job, qfloat8 base (optimum-quanto), low_vram, text embeddings cached, 80 modules, a 15-step memory row, steady over steps 5-15; ${NO_CKPT}`, modules: 80, peakAllocGib: 28.0, source: AITK_LEASE2("klein4b-fp8"), asOf: "2026-12-05", note: "median 0.425: a shorter window than the bf16 row's; ai-toolkit's own rate 0.48 s/it; first measured here (before: ai-toolkit's FLUX.1 fp8/bf16 ratio)" },
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
 * Checked once against another card (whole runs on an H100, 2026-12-06, bench/data/gpu-wholerun-h100-2026-12-06-*.jsonl):
 * FLUX.1's step (compile + fp8 GEMMs + FA4) scaled to 0.312 s, measured 0.295-0.312; SDXL's CUDA-graph step scaled to
 * 0.108 s, measured 0.096-0.097. The H100/H200 pairs imply that GEMMs ran a few % slower on that H100 than on the H200
 * (same datasheet TFLOP/s) and that much less of the rest follows bandwidth than 0.5 (~0.1); but the two cards differ
 * only in bandwidth, so what the rest follows on a card with fewer SMs (compute, or nothing) is not in these data, and
 * the split stays until another kind of card is measured. Where a card was measured for a workload, the plan takes
 * that factor instead (MEASURED_CARD_FACTORS below: the H100's graphed SDXL step).
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

/**
 * A training step's time on another card over the anchor's where we measured it, which the plan takes in place of
 * GPU_SCALING's model for that card and configuration (training steps only: samples and the other GPU work keep the
 * model's factor, which fits them). Measured in whole runs (bench/gpu-wholerun.py, steady s/step) against the H200
 * figure the plan anchors on.
 */
export interface MeasuredCardFactor extends Sourced {
  gpu: string;
  base: BaseModelId;
  /** The built-in trainer's whole-step CUDA graph on or off (the lever the factor was measured with). */
  cudaGraphs: boolean;
  factor: number;
  measured: string;
}

const H100_WHOLERUNS = "bench/data/gpu-wholerun-h100-2026-12-06-{sdxl2000-first,sdxl2000,sdxl2000-second-lease}.jsonl (four 2,000-step runs, two leases)";

export const MEASURED_CARD_FACTORS: readonly MeasuredCardFactor[] = [
  {
    gpu: "h100",
    base: "sdxl",
    cudaGraphs: true,
    factor: 1.047,
    measured: "steady 0.0957-0.0968 s/step (median 0.0963) on an H100 80GB HBM3 against the plan's H200 figure 0.092; GPU_SCALING's model says x 1.17 (0.108): the graphed SDXL step barely follows memory bandwidth, which is all that differs between the two cards' datasheets",
    source: H100_WHOLERUNS,
    asOf: "2026-12-06",
    verified: true,
  },
];

/** bf16 GEMM rate measured on the H200 in the bench runs (8192³: 746-783 TFLOP/s). */
export const H200_GEMM_TFLOPS: Sourced & { tflops: number } = {
  tflops: 770,
  source: "bench/gpu-speed.py (bench/RESULTS.md: bf16 GEMM 747-774 TFLOP/s run 1, 770-783 run 2)",
  asOf: "2026-11-29",
};
