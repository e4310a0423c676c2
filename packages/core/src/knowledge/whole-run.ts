import type { WorkerArch } from "./builtin-trainer.js";
import type { LoraCompute } from "./lora-compute.js";
import type { Sourced } from "./types.js";

/**
 * What a built-in (diffusers) training run spends outside its steady steps, measured in whole runs of
 * the worker (bench/gpu-wholerun.py: `python -m loraspec_worker train` in a fresh process, its result's
 * `timing`, train/timing.py), H200, 1024², rank 16, 20 images, save and samples every 250. The plan's
 * walltime (plan/walltime.ts) adds these to steps x s/step; bench/plan-vs-wholerun.ts and
 * packages/core/test/plan/walltime-wholerun.spec.ts hold the sum against every committed row.
 * Medians over the rows, so one slow call does not move them.
 */
const ROWS = "bench/data/gpu-wholerun-h200-*.jsonl (14 runs, 2026-12-02/03/06)";
const AS_OF = "2026-12-06";

/** Imports, request checks, levers: before the worker's first phase (`startup_s`), 7.3-13.9 s over the rows. */
export const WORKER_STARTUP_S: Sourced & { seconds: number } = { seconds: 8.7, source: `${ROWS}: timing.startup_s, median (7.3-13.9 s)`, asOf: AS_OF };

/**
 * The process outside the worker's clock: the interpreter's launch and its exit. Since the worker ends without the
 * interpreter's teardown (worker/loraspec_worker/__main__.py exit_process; before it: 1.4-4.8 s over the H200 rows,
 * median 2.8), process wall - timing.total_s is 0.36-0.53 s in the four H100 runs of 2026-12-06 (done event to exit 0.27-0.34 s).
 */
export const PROCESS_EXIT_S: Sourced & { seconds: number } = {
  seconds: 0.4,
  source: "bench/data/gpu-wholerun-h100-2026-12-06-*.jsonl: process_wall_s - timing.total_s, median of 4 runs (0.36-0.53 s); exit_s 0.27-0.34 s",
  asOf: "2026-12-06",
};

/**
 * Reading the base from disk: safetensors into GPU memory from a cold page cache. Not measured by us: the
 * whole-run bench builds random weights in memory (its `load_s`, 3.4-7.6 s, is that build), so the plan's
 * load is this published rate over the base's bf16 bytes. A second run with the files in the page cache reads faster.
 */
export const LOAD_READ_GBPS: Sourced & { gbPerS: number } = {
  gbPerS: 1.1,
  source: "github.com/mgoin/instanttensor README, model loading benchmark (Qwen3-30B-A3B on 1x H200 with plain safetensors: 57.4 s, 1.1 GB/s)",
  asOf: "2026-12-03",
};

/** The VAE's weights (SDXL's and FLUX.1's AutoencoderKL, ~84M parameters), read with the base. */
export const VAE_READ_GB = 0.17;

export interface ArchRunCost extends Sourced {
  /** Latent + text-embedding caching, seconds per image (`cache_s` / 20 images). */
  cachePerImageS: number;
  /** Building the trainer after the cache (`setup_s`: LoRA, optimizer, compile wrappers). */
  setupS: number;
  /**
   * The worker's steady step in a whole run over the gpu-speed row of the same levers, by the LoRA's compute path
   * (the request's lora_compute). Keyed by it because that is what the data separate: every whole run with the LoRA in
   * fp32 stepped over its row (SDXL 9-10% on three leases, against fp32 rows of two leases that agree, 0.107 and 0.106,
   * so not one card's speed), and both with it in bf16 stepped at their row (SDXL 0.092 = 0.092), with the same
   * per-step loop (the worker's loop.py changed between 2026-12-03 and 2026-12-06 only in start-up marks and the
   * loss-spike arithmetic). Why the worker's fp32 path costs more than the bench's is not isolated (no whole-run profile).
   */
  loopFactor: Readonly<Record<LoraCompute, number>>;
  /** Where loopFactor's figures come from. */
  loopSource: string;
}

/** Per worker arch where measured; other arches take FLUX.1's (a transformer with T5-class embeddings), said so. */
export const ARCH_RUN_COSTS: Readonly<Partial<Record<WorkerArch, ArchRunCost>>> = {
  sdxl: {
    cachePerImageS: 0.123,
    setupS: 0.7,
    loopFactor: { fp32: 1.09, bf16: 1.0 },
    loopSource:
      "fp32: steady 0.1167-0.1172 s/step in the four committed SDXL runs (three leases: 2026-12-02 ~23:50, 2026-12-03 00:23-00:30 and 08:04-08:33 UTC; also 0.117 in the 2026-12-02 11:35 400-step row of bench/RESULTS.md) vs knowledge/train-speed.ts's CUDA graph + channels-last row 0.107 (2026-11-29; its twin 0.106 on 2026-12-03): 1.09-1.10; bf16: steady 0.0920 and 0.0922 in the two 2026-12-06 runs (bench/data/gpu-wholerun-h200-2026-12-06.jsonl, -sdxl-2000.jsonl) vs the LoRA bf16 row 0.092: 1.00",
    source: `${ROWS}: SDXL runs, cache_s 2.2-3.1 s for 20 images, setup_s 0.65-1.34 s (medians)`,
    asOf: AS_OF,
  },
  flux1: {
    cachePerImageS: 0.142,
    setupS: 3.4,
    // fp32: the FA4 run's steady 0.322 vs its row's 0.306 (the levers the plan picks on an H200); the torch-kernel runs
    // of 2026-12-02/03 stepped 0.387-0.409 against their row's 0.402 (measured 2026-11-29), 0.96-1.02.
    loopFactor: { fp32: 1.05, bf16: 1.0 },
    loopSource:
      "fp32: bench/data/gpu-wholerun-h200-2026-12-03-flux2000-fa4.jsonl steady 0.322 s/step vs knowledge/train-speed.ts FA4 + compile + fp8 GEMMs 0.306 (the torch-kernel runs of 2026-12-02/03: 0.387-0.409 vs 0.402); bf16: no FLUX.1 row runs the plan's bf16 levers to hold a run against (FA4 + LoRA bf16 is measured only with every linear or checkpointing), so SDXL's measured 1.00; the 2026-12-06 runs (bench/data/gpu-wholerun-h200-2026-12-06.jsonl, compile + fp8 GEMMs + FA4 + LoRA bf16) stepped 0.276-0.279, 6-7% under the FA4 fp32 row x the bf16 twins' ratio the plan times them by (plan/walltime.ts)",
    source: `${ROWS}: FLUX.1 runs, cache_s 2.5-3.6 s for 20 images, setup_s 2.7-4.9 s (medians)`,
    asOf: AS_OF,
  },
};

/** A periodic save stalls the training thread for its snapshot (the files are written beside the steps); the final save is written in line. */
export const SAVE_S: Sourced & { periodicS: number; finalS: number } = {
  periodicS: 0.21,
  finalS: 0.38,
  source: `${ROWS}: saves_s / saves 0.13-0.39 s, final_save_s 0.32-0.62 s (medians; rank 16)`,
  asOf: AS_OF,
};

/**
 * The first torch.compile with the compile cache filled by an earlier run of the same configuration (train/compile_cache.py):
 * `seconds` with torch's attention kernel, `fa4Seconds` with FlashAttention-4, whose compiled kernels the cache folder keeps
 * too (FA4_KERNEL.persistentCache; before that cache, FA4's warm runs took 14.6-17.4 s recompiling its kernels).
 */
export const COMPILE_CACHE_WARM_S: Sourced & { seconds: number; fa4Seconds: number; arch: WorkerArch } = {
  seconds: 12.1,
  fa4Seconds: 6.5,
  arch: "flux1",
  source:
    "bench/data/gpu-wholerun-h200-2026-12-03-warmup-sdxl2000.jsonl: FLUX.1 warm run, timing.warmup_s (its cold twin 42.7 s); " +
    "FA4: bench/data/gpu-wholerun-h100-2026-12-06-flux1-warm400-fa4-cache.jsonl, the warm run's timing.warmup_s 6.55 s (its cold twin 46.3 s; " +
    "before FA4's kernel cache: 14.6 s on an H100, 15.4-17.4 s on the H200, bench/data/gpu-wholerun-*-2026-12-06*.jsonl)",
  asOf: AS_OF,
};

/**
 * gpu-speed's `warmupS` is the total of its first 5 steps (bench/gpu-speed.py --warmup, default 5): the
 * warm-up beyond steady steps is warmupS less 5 steady steps.
 */
export const GPU_SPEED_WARMUP_STEPS = 5;

/** How the worker renders an in-training sample (core decides: BUILTIN_TRAINER.sampleGraph / sampleMerge; plan/sample-time.ts samplePath). */
export type SamplePath = "eager" | "graph" | "merge" | "graph+merge" | "compiled";

export interface SamplePassRecord extends Sourced {
  arch: WorkerArch;
  path: SamplePath;
  /** One denoiser pass (a CFG pair is two) at 1024² on the H200, seconds. */
  passSeconds: number;
  /** The rest of an image: the LoRA merge, the VAE decode, the pipeline around the loop. */
  imageExtraS: number;
  /** The first sample's extra (the sample graph's capture; the compiled path: compiling its no_grad graphs). */
  firstExtraS: number;
  /** The compiled path's first extra when torch.compile's cache holds the graphs (Dynamo still traces them). */
  firstExtraWarmS?: number;
}

/**
 * Measured sample passes (the samples' own log lines in the whole runs: denoise, merge, decode per image;
 * 20 steps, SDXL with CFG 6 = 40 passes, FLUX.1 embedded guidance = 20). Where an arch and path has none,
 * the plan takes FORWARD_SHARE_OF_STEP of its training step (plan/sample-time.ts).
 */
export const SAMPLE_PASSES: readonly SamplePassRecord[] = [
  {
    arch: "sdxl",
    path: "graph+merge",
    passSeconds: 0.0251,
    imageExtraS: 0.17,
    firstExtraS: 0.6,
    source: "bench/data/gpu-wholerun-h200-2026-12-03-sdxl600-samplemerge.jsonl logs: denoise 0.99-1.02 s / 40 passes (0.21 x the run's 0.117 s step), images 1.15-1.20 s, the first 1.78 s",
    asOf: AS_OF,
  },
  {
    arch: "sdxl",
    path: "graph",
    passSeconds: 0.0413,
    imageExtraS: 0.14,
    firstExtraS: 1.0,
    source: "bench/data/gpu-wholerun-h200-2026-12-03-sdxl600-sampleout.jsonl logs: denoise 1.62-1.68 s / 40 passes, images 1.75-1.83 s, the first 2.79 s",
    asOf: AS_OF,
  },
  {
    arch: "sdxl",
    path: "eager",
    passSeconds: 0.081,
    imageExtraS: 0.17,
    firstExtraS: 0,
    source: "bench/data/gpu-wholerun-h200-2026-12-03-warmup-sdxl2000.jsonl: 23.8 s between steps for 7 samples (3.4 s each; denoise not split out: the decode taken as the graph path's)",
    asOf: AS_OF,
  },
  {
    arch: "flux1",
    path: "merge",
    passSeconds: 0.245,
    imageExtraS: 0.07,
    firstExtraS: 0,
    source:
      "bench/data/gpu-wholerun-h200-2026-12-06.jsonl logs (FA4, compile + fp8 GEMMs, LoRA bf16, 266 LoRA layers merged per call): pipeline 4.87-4.96 s for 20 passes (0.88 x the run's 0.277 s step; the VAE decode inside it), images 4.92-5.03 s; on an H100 the same run's 8 images 5.26-5.48 s (bench/data/gpu-wholerun-h100-2026-12-06-flux1-warm2000.jsonl)",
    asOf: "2026-12-06",
  },
  {
    arch: "flux1",
    path: "compiled",
    passSeconds: 0.136,
    imageExtraS: 0.07,
    firstExtraS: 14.4,
    firstExtraWarmS: 4.3,
    source:
      "bench/data/gpu-wholerun-h200-2026-12-06-flux1-compiled-samples.jsonl logs (FA4, compile + fp8 GEMMs, LoRA bf16, the LoRA path through the compiled blocks): warm run's images 2-8 2.41-3.07 s (median 2.82: 20 passes of 0.136 s + 0.07), the first 7.09 s (+4.3: Dynamo traces the no_grad graphs the cache holds); the cold run's only image 17.23 s (+14.4: compiling them)",
    asOf: "2026-12-06",
  },
  {
    arch: "flux1",
    path: "eager",
    passSeconds: 0.31,
    imageExtraS: 0.39,
    firstExtraS: 0,
    source:
      "bench/data/gpu-wholerun-h200-2026-12-03-flux2000-fa4.jsonl logs: images 6.1-7.6 s (median 6.6) for 20 passes, compiled blocks run eagerly, the base's linears through the fp8 wrapper, the LoRA in fp32 (0.96 x the run's 0.322 s step); decode not split out",
    asOf: AS_OF,
  },
];

export function samplePassOf(arch: WorkerArch, path: SamplePath): SamplePassRecord | undefined {
  return SAMPLE_PASSES.find((r) => r.arch === arch && r.path === path);
}
