import type { BaseModelId } from "./base-models.js";
import type { Sourced } from "./types.js";

/**
 * Measured speed and memory of the built-in (diffusers) trainer, one record per configuration.
 * All at 1024x1024, LoRA rank 16 on the attention projections (a row with `targets`: every linear of the blocks), bf16 base, fp32 LoRA, AdamW,
 * cached latents + text embeddings (text encoders and VAE off the GPU), FLUX text length 512.
 * `secondsPerStep` is the mean of steps 6-50; `peakAllocGib` is torch.cuda.max_memory_allocated
 * (GiB, without the CUDA context: see CUDA_CONTEXT). Levers as bench/gpu-speed.py names them
 * ("fp8mm": fp8 GEMMs for the frozen base, the worker's fp8_matmul; "lora_bf16": the LoRA path computed in bf16,
 * the worker's lora_compute, knowledge/lora-compute.ts).
 */
export type SpeedLever = "fused" | "channels_last" | "compile" | "fp8" | "fp8mm" | "cudnn_sdpa" | "graphs" | "lora_bf16";

export interface TrainSpeedRecord extends Sourced {
  base: BaseModelId;
  gpu: "h200";
  trainer: "diffusers";
  /** bench/gpu-speed.py's configuration name. */
  config: string;
  resolution: number;
  batch: number;
  gradientCheckpointing: boolean;
  /**
   * With checkpointing: which activations are recomputed (absent: full, every block's forward). "selective" is the
   * product's policy, BUILTIN_TRAINER.selectiveCheckpointingKeep (each block's attention outputs kept, every matmul
   * recomputed; the bench's `ckpt="selective-attention"`, gradient_checkpointing "selective-attention" in its lines).
   * The rows of the earlier matmul+attention policy (2026-12-02 rows 23-25, 2026-12-03's FA4 row, 2026-12-06 row 44)
   * are bench records only (bench/RESULTS.md): that policy is not the product's, so no record here reads as it.
   */
  checkpointingMode?: "selective";
  quantize: "none" | "fp8";
  levers: readonly SpeedLever[];
  secondsPerStep: number;
  /** Undefined where the row's line was lost (the time comes from the run's log). */
  peakAllocGib?: number;
  /** Seconds of the first steps (torch.compile works here; the first compile of a process). */
  warmupS?: number;
  /** The attention kernel (absent: torch's SDPA flash kernel; "fa4": FlashAttention-4, knowledge/attention.ts). */
  attention?: "fa4";
  /**
   * The LoRA's network.targets preset (absent: "attention", the built-in trainer's default). The all-linear rows are
   * what the walltime times an all-linear contract by where its exact configuration was measured
   * (plan/walltime.ts); every other lookup reads the attention rows only.
   */
  targets?: "all-linear";
}

export const TRAIN_SPEED_SOURCE = "bench/gpu-speed.py, bench/data/gpu-speed-h200-2026-11-29.jsonl";
/** The third session's run (fp8 GEMMs with their eager twins; the CUDA-graph rows after the capture fix). */
export const TRAIN_SPEED_SOURCE_FP8 = "bench/gpu-speed.py, bench/data/gpu-speed-h200-2026-11-29-fp8.jsonl";
/** SDXL's whole-step CUDA graph over regionally compiled blocks (issue 22), with its graph-only and eager twins in the same run. */
export const TRAIN_SPEED_SOURCE_GRAPH_COMPILE = "bench/gpu-speed.py --configs 0,4,26 --steps 30, bench/data/gpu-speed-h200-2026-12-02-sdxl-graph-compile.jsonl";
/**
 * FlashAttention-4 (issue 22): bench/gpu-speed.py --attention fa4 --steps 30, torch 2.11.0+cu130, flash-attn-4 4.0.0b36.
 * Its torch-kernel twin in the same session: FLUX.1 fast + fp8 GEMMs 0.381 s/step (bench/data/gpu-speed-h200-2026-12-03-flux-sdpa.log);
 * loss curves within 2e-5 mean / 6e-5 max of it.
 */
export const TRAIN_SPEED_SOURCE_FA4 =
  "bench/gpu-speed.py --attention fa4 --steps 30, bench/data/gpu-speed-h200-2026-12-03-fa4.jsonl (the JSON lines of its runs' logs gpu-speed-h200-2026-12-03-{flux-fa4,flux-ckpt-fa4,fa4-more,klein-fa4}.log)";
/**
 * The LoRA path in bf16 (issue 22; knowledge/lora-compute.ts), each row with its fp32 twin in the same run: graph 0.106,
 * eager fused 0.598 (bench/data/gpu-speed-h200-2026-12-03-lora-bf16.jsonl), graph + regional compile 0.083 (-compile.jsonl).
 */
export const TRAIN_SPEED_SOURCE_LORA_BF16 = "bench/gpu-speed.py --only sdxl --configs 0,1,31,4,32 --steps 50, bench/data/gpu-speed-h200-2026-12-03-lora-bf16.jsonl";
export const TRAIN_SPEED_SOURCE_LORA_BF16_COMPILE = "bench/gpu-speed.py --only sdxl --configs 26,33 --steps 30, bench/data/gpu-speed-h200-2026-12-03-lora-bf16-compile.jsonl";
/** FLUX.1's LoRA path in bf16, with its fp32 twins in the same run: eager fused 0.556, compile + fp8 GEMMs 0.396 (torch SDPA). */
export const TRAIN_SPEED_SOURCE_LORA_BF16_FLUX1 = "bench/gpu-speed.py --only flux1 --configs 10,11,34,20,35 --steps 50, bench/data/gpu-speed-h200-2026-12-04-flux1-lora-bf16.jsonl";
/**
 * FLUX.2 [klein]'s LoRA path in bf16 and its fp8 GEMM rows with torch's attention kernel (measured with FA4 only before),
 * with their fp32 twins in the same run: 4B eager 0.291, fast 0.202; 9B eager 0.524, fast 0.381 (torch SDPA).
 */
export const TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN =
  "bench/gpu-speed.py --only klein4b --configs 16,17,29,36,37,38 --steps 50 and --only klein9b --configs 18,19,30,39,40,41 --steps 50, bench/data/gpu-speed-h200-2026-12-04-klein-lora-bf16.jsonl";
/**
 * Every linear of the blocks (`--targets all-linear`; SDXL 722 modules, FLUX.1 494, klein 4B 100), each fast row with its eager
 * twin in the same run and loss-checked against it: issue 22's second 2026-12-05 lease (04:51-05:09 UTC, torch 2.11.0+cu130,
 * FA4 for FLUX.1 and klein, torch's kernel for SDXL; bench/RESULTS.md "The second 2026-12-05 lease"; the peers' rows of that
 * lease: knowledge/trainer-speeds.ts).
 */
export const TRAIN_SPEED_SOURCE_ALL_LINEAR_FA4 =
  "bench/gpu-speed.py --only sdxl --configs 0,32 --targets all-linear --steps 30, then --only flux1,klein4b --configs 10,35,16,38 --targets all-linear --attention fa4 --steps 30, bench/data/gpu-speed-h200-2026-12-05-same-lease2.jsonl";
/** The same, torch's attention kernel (the rows a card without FA4 is timed from): FLUX.1 in the first 2026-12-05 lease, and 2026-12-04's FLUX.1 and klein 4B. */
export const TRAIN_SPEED_SOURCE_ALL_LINEAR_FLUX1 = "bench/gpu-speed.py --only flux1 --targets all-linear (the first 2026-12-05 lease, 02:12-02:18 UTC), bench/data/gpu-speed-h200-2026-12-05-same-lease-flux1.jsonl";
export const TRAIN_SPEED_SOURCE_ALL_LINEAR_FLUX1_1204 = "bench/gpu-speed.py --only flux1 --configs 10,35 --targets all-linear --steps 30, bench/data/gpu-speed-h200-2026-12-04-flux1-lora-bf16-all-linear.jsonl";
export const TRAIN_SPEED_SOURCE_ALL_LINEAR_KLEIN_1204 = "bench/gpu-speed.py --only klein4b --configs 16,17,37,38 --targets all-linear --steps 50, bench/data/gpu-speed-h200-2026-12-04-klein4b-lora-bf16-all-linear.jsonl";
/** FLUX.1 with full checkpointing, FA4, the LoRA path in bf16 (config 42), with its eager twin, in the second 2026-12-05 lease. */
export const TRAIN_SPEED_SOURCE_CKPT_FA4_LORA_BF16 = "bench/gpu-speed.py --only flux1 --configs 13,42 --attention fa4 --steps 30, bench/data/gpu-speed-h200-2026-12-05-flux1-ckpt-fa4-lora-bf16.jsonl";
/**
 * FLUX.1 with the product's selective checkpointing (each block's attention outputs kept: row 43) against full checkpointing
 * (row 42) and its eager twin (row 13), FA4, the LoRA path in bf16, H200, 2026-12-06 04:03-04:07 UTC; rows 42 and 43 loss-checked
 * against row 13. The file's row 44 (the matmul+attention policy, 0.294 s/step at 42.1 GiB, about no checkpointing's memory)
 * is that retired policy's and not a record here.
 */
export const TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4 = "bench/gpu-speed.py --only flux1 --configs 13,42,43,44 --attention fa4 --steps 30, bench/data/gpu-speed-h200-2026-12-06-flux1-ckpt-selective-fa4.jsonl";
const S = TRAIN_SPEED_SOURCE;
const A = "2026-11-29";
const row = (r: Omit<TrainSpeedRecord, "gpu" | "trainer" | "resolution" | "source" | "asOf">, source: string = S): TrainSpeedRecord => ({
  gpu: "h200",
  trainer: "diffusers",
  resolution: 1024,
  source,
  asOf: A,
  ...r,
});

const fa4 = (r: Omit<TrainSpeedRecord, "gpu" | "trainer" | "resolution" | "source" | "asOf" | "batch" | "quantize" | "attention">): TrainSpeedRecord => ({
  gpu: "h200",
  trainer: "diffusers",
  resolution: 1024,
  batch: 1,
  quantize: "none",
  attention: "fa4",
  source: TRAIN_SPEED_SOURCE_FA4,
  asOf: "2026-12-03",
  ...r,
});

const allLinear = (
  r: Pick<TrainSpeedRecord, "base" | "config" | "levers" | "secondsPerStep" | "peakAllocGib" | "warmupS">,
  source: string,
  asOf: string,
  more: Pick<TrainSpeedRecord, "attention" | "note"> = {},
): TrainSpeedRecord => ({ gpu: "h200", trainer: "diffusers", resolution: 1024, batch: 1, gradientCheckpointing: false, quantize: "none", targets: "all-linear", source, asOf, ...r, ...more });

/** NVIDIA H200, torch 2.11.0+cu130, bf16 GEMM measured at 746-774 TFLOP/s in the same runs. */
export const TRAIN_SPEEDS: readonly TrainSpeedRecord[] = [
  row({ base: "sdxl", config: "eager", batch: 1, gradientCheckpointing: false, quantize: "none", levers: [], secondsPerStep: 0.496, peakAllocGib: 12.53, warmupS: 3.1 }),
  row({ base: "sdxl", config: "fused AdamW + channels-last", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "channels_last"], secondsPerStep: 0.538, peakAllocGib: 12.64, warmupS: 3.1 }),
  row({ base: "sdxl", config: "+ regional compile", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "channels_last", "compile"], secondsPerStep: 0.368, peakAllocGib: 10.77, warmupS: 159.3 }),
  row({ base: "sdxl", config: "+ regional compile + cuDNN SDPA", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "channels_last", "compile", "cudnn_sdpa"], secondsPerStep: 0.42, peakAllocGib: 10.77, warmupS: 11.1 }),
  row({ base: "sdxl", config: "CUDA graph of the whole step + channels-last", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "channels_last", "graphs"], secondsPerStep: 0.107, peakAllocGib: 12.86, warmupS: 3.0 }),
  // The graph replays inductor's fused kernels (GroupNorm, SiLU, the LoRA adds in fewer memory passes): 1.27x over
  // the graph alone in the same run (0.105 there), loss within 0.02% of eager; the compile happens in the graph's warm-up steps.
  { ...row({ base: "sdxl", config: "CUDA graph of the whole step + regional compile + channels-last", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "channels_last", "compile", "graphs"], secondsPerStep: 0.083, peakAllocGib: 10.96, warmupS: 130.4 }, TRAIN_SPEED_SOURCE_GRAPH_COMPILE), asOf: "2026-12-02" },
  // The LoRA path in bf16 (TRAIN_SPEED_SOURCE_LORA_BF16*): the LoRA GEMMs 18.9 -> 12.5 ms/step and the fp32 input copies gone
  // (GPU busy 101 -> 87 ms/step under the graph). The compile row's warm-up (25.8 s) came after its fp32 twin had compiled the
  // same blocks in that process (132.7 s there): a first compile costs COMPILE_WARMUP_S.
  { ...row({ base: "sdxl", config: "fused AdamW + channels-last + LoRA bf16", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "channels_last", "lora_bf16"], secondsPerStep: 0.535, peakAllocGib: 10.75, warmupS: 2.8 }, TRAIN_SPEED_SOURCE_LORA_BF16), asOf: "2026-12-03" },
  { ...row({ base: "sdxl", config: "CUDA graph of the whole step + channels-last + LoRA bf16", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "channels_last", "graphs", "lora_bf16"], secondsPerStep: 0.092, peakAllocGib: 10.81, warmupS: 2.9 }, TRAIN_SPEED_SOURCE_LORA_BF16), asOf: "2026-12-03" },
  { ...row({ base: "sdxl", config: "CUDA graph of the whole step + regional compile + channels-last + LoRA bf16", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "channels_last", "compile", "graphs", "lora_bf16"], secondsPerStep: 0.078, peakAllocGib: 9.73, warmupS: 25.8 }, TRAIN_SPEED_SOURCE_LORA_BF16_COMPILE), asOf: "2026-12-03" },
  row({ base: "sdxl", config: "eager", batch: 4, gradientCheckpointing: false, quantize: "none", levers: [], secondsPerStep: 0.51, peakAllocGib: 34.81, warmupS: 2.0 }),
  row({ base: "sdxl", config: "fast", batch: 4, gradientCheckpointing: false, quantize: "none", levers: ["fused", "channels_last", "compile"], secondsPerStep: 0.366, note: "the row's JSON line was lost; time from the run's log, no memory figure" }),
  row({ base: "sdxl", config: "CUDA graph of the whole step + channels-last", batch: 4, gradientCheckpointing: false, quantize: "none", levers: ["fused", "channels_last", "graphs"], secondsPerStep: 0.276, peakAllocGib: 35.36, warmupS: 4.1 }),
  row({ base: "sdxl", config: "eager", batch: 1, gradientCheckpointing: true, quantize: "none", levers: [], secondsPerStep: 1.071, peakAllocGib: 6.2, warmupS: 6.0 }),
  row({ base: "flux1-dev", config: "eager", batch: 1, gradientCheckpointing: false, quantize: "none", levers: [], secondsPerStep: 0.572, peakAllocGib: 50.08, warmupS: 3.0 }),
  row({ base: "flux1-dev", config: "fused AdamW", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused"], secondsPerStep: 0.562, peakAllocGib: 50.13, warmupS: 2.8 }),
  row({ base: "flux1-dev", config: "fast", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "compile"], secondsPerStep: 0.44, peakAllocGib: 44.15, warmupS: 41.1 }),
  row({ base: "flux1-dev", config: "eager", batch: 1, gradientCheckpointing: true, quantize: "none", levers: [], secondsPerStep: 0.873, peakAllocGib: 24.81, warmupS: 4.1 }),
  row({ base: "flux1-dev", config: "fast", batch: 1, gradientCheckpointing: true, quantize: "none", levers: ["fused", "compile"], secondsPerStep: 0.64, peakAllocGib: 24.69, warmupS: 7.9, note: "warm-up after the no-checkpointing compile in the same process" }),
  row({ base: "flux1-dev", config: "fp8 base (24 GB recipe)", batch: 1, gradientCheckpointing: true, quantize: "fp8", levers: ["fused", "compile", "fp8"], secondsPerStep: 0.668, peakAllocGib: 13.81, warmupS: 37.2 }),
  // Same card, a later run (its eager twins: 0.560 / 0.824 s/step, 2-6% under the first run's).
  row({ base: "flux1-dev", config: "fast + fp8 GEMMs", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "compile", "fp8mm"], secondsPerStep: 0.402, peakAllocGib: 44.64, warmupS: 50.5 }, TRAIN_SPEED_SOURCE_FP8),
  row({ base: "flux1-dev", config: "fast + fp8 GEMMs", batch: 1, gradientCheckpointing: true, quantize: "none", levers: ["fused", "compile", "fp8mm"], secondsPerStep: 0.586, peakAllocGib: 24.82, warmupS: 16.8 }, TRAIN_SPEED_SOURCE_FP8),
  row({ base: "flux1-dev", config: "fp8 base + fp8 GEMM forward (24 GB recipe)", batch: 1, gradientCheckpointing: true, quantize: "fp8", levers: ["fused", "compile", "fp8", "fp8mm"], secondsPerStep: 0.614, peakAllocGib: 13.73, warmupS: 30.9 }, TRAIN_SPEED_SOURCE_FP8),
  // The LoRA path in bf16 (TRAIN_SPEED_SOURCE_LORA_BF16_FLUX1, 2026-12-04): -8% eager, -3% under compile + fp8 GEMMs; peak -8.5 GiB
  // eager (peft's fp32 copies of 266 layers' inputs), -2.5 GiB compiled. Its compile warm-up followed its fp32 twin's in the process.
  { ...row({ base: "flux1-dev", config: "fused AdamW + LoRA bf16", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "lora_bf16"], secondsPerStep: 0.513, peakAllocGib: 41.57, warmupS: 2.6 }, TRAIN_SPEED_SOURCE_LORA_BF16_FLUX1), asOf: "2026-12-04" },
  { ...row({ base: "flux1-dev", config: "fast + fp8 GEMMs + LoRA bf16", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "compile", "fp8mm", "lora_bf16"], secondsPerStep: 0.383, peakAllocGib: 42.11, warmupS: 43.6 }, TRAIN_SPEED_SOURCE_LORA_BF16_FLUX1), asOf: "2026-12-04" },
  row({ base: "flux2-klein-4b", config: "eager", batch: 1, gradientCheckpointing: false, quantize: "none", levers: [], secondsPerStep: 0.292, peakAllocGib: 21.55, warmupS: 1.5 }),
  row({ base: "flux2-klein-4b", config: "fast", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "compile"], secondsPerStep: 0.208, peakAllocGib: 18.97, warmupS: 34.0 }),
  row({ base: "flux2-klein-9b", config: "eager", batch: 1, gradientCheckpointing: false, quantize: "none", levers: [], secondsPerStep: 0.53, peakAllocGib: 41.09, warmupS: 2.6 }),
  row({ base: "flux2-klein-9b", config: "fast", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "compile"], secondsPerStep: 0.392, peakAllocGib: 36.46, warmupS: 23.3 }),
  // TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN (2026-12-04, torch SDPA): fp8 GEMMs -12% / -17% under compile; the LoRA path in bf16
  // -10% / -11% eager, -3% / -4% compiled, -4% / -5% with fp8 GEMMs; peak -1.8 / -3.3 GiB eager, -1.0 / -1.7 GiB compiled + fp8 GEMMs.
  { ...row({ base: "flux2-klein-4b", config: "fast + fp8 GEMMs", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "compile", "fp8mm"], secondsPerStep: 0.178, peakAllocGib: 18.39, warmupS: 34.5 }, TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN), asOf: "2026-12-04" },
  { ...row({ base: "flux2-klein-4b", config: "eager + LoRA bf16", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["lora_bf16"], secondsPerStep: 0.262, peakAllocGib: 19.33, warmupS: 1.4 }, TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN), asOf: "2026-12-04" },
  { ...row({ base: "flux2-klein-4b", config: "fast + LoRA bf16", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "compile", "lora_bf16"], secondsPerStep: 0.195, peakAllocGib: 17.33, warmupS: 25.7 }, TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN), asOf: "2026-12-04" },
  { ...row({ base: "flux2-klein-4b", config: "fast + fp8 GEMMs + LoRA bf16", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "compile", "fp8mm", "lora_bf16"], secondsPerStep: 0.17, peakAllocGib: 17.44, warmupS: 34.1 }, TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN), asOf: "2026-12-04" },
  { ...row({ base: "flux2-klein-9b", config: "fast + fp8 GEMMs", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "compile", "fp8mm"], secondsPerStep: 0.316, peakAllocGib: 35.87, warmupS: 30.1 }, TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN), asOf: "2026-12-04" },
  { ...row({ base: "flux2-klein-9b", config: "eager + LoRA bf16", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["lora_bf16"], secondsPerStep: 0.467, peakAllocGib: 37.36, warmupS: 2.4 }, TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN), asOf: "2026-12-04" },
  { ...row({ base: "flux2-klein-9b", config: "fast + LoRA bf16", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "compile", "lora_bf16"], secondsPerStep: 0.367, peakAllocGib: 33.95, warmupS: 22.5 }, TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN), asOf: "2026-12-04" },
  { ...row({ base: "flux2-klein-9b", config: "fast + fp8 GEMMs + LoRA bf16", batch: 1, gradientCheckpointing: false, quantize: "none", levers: ["fused", "compile", "fp8mm", "lora_bf16"], secondsPerStep: 0.3, peakAllocGib: 34.21, warmupS: 26.3 }, TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN), asOf: "2026-12-04" },
  // FlashAttention-4 (TRAIN_SPEED_SOURCE_FA4).
  fa4({ base: "flux1-dev", config: "eager", gradientCheckpointing: false, levers: [], secondsPerStep: 0.476, peakAllocGib: 50.08, warmupS: 2.9 }),
  fa4({ base: "flux1-dev", config: "fast + fp8 GEMMs", gradientCheckpointing: false, levers: ["fused", "compile", "fp8mm"], secondsPerStep: 0.306, peakAllocGib: 44.64, warmupS: 49.1 }),
  fa4({ base: "flux1-dev", config: "eager", gradientCheckpointing: true, levers: [], secondsPerStep: 0.765, peakAllocGib: 24.81, warmupS: 3.8 }),
  fa4({ base: "flux1-dev", config: "fast + fp8 GEMMs", gradientCheckpointing: true, levers: ["fused", "compile", "fp8mm"], secondsPerStep: 0.481, peakAllocGib: 24.82, warmupS: 16.4 }),
  fa4({ base: "flux2-klein-4b", config: "eager", gradientCheckpointing: false, levers: [], secondsPerStep: 0.251, peakAllocGib: 21.11, warmupS: 1.4 }),
  fa4({ base: "flux2-klein-4b", config: "fast", gradientCheckpointing: false, levers: ["fused", "compile"], secondsPerStep: 0.169, peakAllocGib: 18.51, warmupS: 24.7 }),
  fa4({ base: "flux2-klein-4b", config: "fast + fp8 GEMMs", gradientCheckpointing: false, levers: ["fused", "compile", "fp8mm"], secondsPerStep: 0.141, peakAllocGib: 18.39, warmupS: 30.4 }),
  fa4({ base: "flux2-klein-9b", config: "eager", gradientCheckpointing: false, levers: [], secondsPerStep: 0.466, peakAllocGib: 40.65, warmupS: 2.3 }),
  fa4({ base: "flux2-klein-9b", config: "fast", gradientCheckpointing: false, levers: ["fused", "compile"], secondsPerStep: 0.332, peakAllocGib: 36.01, warmupS: 20.8 }),
  fa4({ base: "flux2-klein-9b", config: "fast + fp8 GEMMs", gradientCheckpointing: false, levers: ["fused", "compile", "fp8mm"], secondsPerStep: 0.261, peakAllocGib: 35.87, warmupS: 31.4 }),
  // FLUX.1 with full checkpointing, FA4 (TRAIN_SPEED_SOURCE_CKPT_FA4_LORA_BF16, 2026-12-05): the LoRA path in bf16 gains nothing
  // under full recomputation (0.488 against the fp32 FA4 row's 0.481 of 2026-12-03); its eager twin 0.720 (0.765 on 2026-12-03).
  { ...fa4({ base: "flux1-dev", config: "eager", gradientCheckpointing: true, levers: [], secondsPerStep: 0.72, peakAllocGib: 24.81, warmupS: 4.1 }), source: TRAIN_SPEED_SOURCE_CKPT_FA4_LORA_BF16, asOf: "2026-12-05" },
  { ...fa4({ base: "flux1-dev", config: "fast + fp8 GEMMs + LoRA bf16", gradientCheckpointing: true, levers: ["fused", "compile", "fp8mm", "lora_bf16"], secondsPerStep: 0.488, peakAllocGib: 24.75, warmupS: 47.8 }), source: TRAIN_SPEED_SOURCE_CKPT_FA4_LORA_BF16, asOf: "2026-12-05" },
  // Selective checkpointing as the product runs it (TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4, 2026-12-06): each block's attention
  // output kept (+1.5 GiB over full: one tokens x hidden bf16 tensor per block, VRAM_SELECTIVE_ACTIVATIONS), every matmul
  // recomputed; 26% under full checkpointing's step in the same run.
  { ...fa4({ base: "flux1-dev", config: "eager", gradientCheckpointing: true, levers: [], secondsPerStep: 0.794, peakAllocGib: 24.81, warmupS: 3.7 }), source: TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4, asOf: "2026-12-06" },
  { ...fa4({ base: "flux1-dev", config: "fast + fp8 GEMMs + LoRA bf16", gradientCheckpointing: true, levers: ["fused", "compile", "fp8mm", "lora_bf16"], secondsPerStep: 0.465, peakAllocGib: 24.74, warmupS: 48.1 }), source: TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4, asOf: "2026-12-06" },
  { ...fa4({ base: "flux1-dev", config: "fast + fp8 GEMMs + LoRA bf16 + selective checkpointing (attention outputs only)", gradientCheckpointing: true, checkpointingMode: "selective", levers: ["fused", "compile", "fp8mm", "lora_bf16"], secondsPerStep: 0.345, peakAllocGib: 26.24, warmupS: 45.0 }), source: TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4, asOf: "2026-12-06" },
  // Every linear of the blocks (targets "all-linear"): the plan times an all-linear contract by these where its configuration
  // was measured, else by the attention row x knowledge/target-speed.ts's ratio.
  allLinear({ base: "sdxl", config: "eager", levers: [], secondsPerStep: 0.484, peakAllocGib: 14.88, warmupS: 2.6 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_FA4, "2026-12-05", { note: "722 modules" }),
  allLinear({ base: "sdxl", config: "CUDA graph of the whole step + channels-last + LoRA bf16", levers: ["fused", "channels_last", "graphs", "lora_bf16"], secondsPerStep: 0.106, peakAllocGib: 12.03, warmupS: 2.9 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_FA4, "2026-12-05", { note: "722 modules; loss check pass (0.01% mean / 0.03% max of its eager twin)" }),
  allLinear({ base: "flux1-dev", config: "eager", levers: [], secondsPerStep: 0.602, peakAllocGib: 71.86, warmupS: 3.1 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_FA4, "2026-12-05", { attention: "fa4", note: "494 modules" }),
  allLinear({ base: "flux1-dev", config: "fast + fp8 GEMMs + LoRA bf16", levers: ["fused", "compile", "fp8mm", "lora_bf16"], secondsPerStep: 0.319, peakAllocGib: 52.21, warmupS: 42.3 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_FA4, "2026-12-05", { attention: "fa4", note: "494 modules; loss check pass (0.01% / 0.09%)" }),
  allLinear({ base: "flux2-klein-4b", config: "eager", levers: [], secondsPerStep: 0.272, peakAllocGib: 26.29, warmupS: 1.4 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_FA4, "2026-12-05", { attention: "fa4", note: "100 modules" }),
  allLinear({ base: "flux2-klein-4b", config: "fast + fp8 GEMMs + LoRA bf16", levers: ["fused", "compile", "fp8mm", "lora_bf16"], secondsPerStep: 0.135, peakAllocGib: 20.23, warmupS: 22.3 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_FA4, "2026-12-05", { attention: "fa4", note: "100 modules; loss check pass (0.00% / 0.00%)" }),
  allLinear({ base: "flux1-dev", config: "eager", levers: [], secondsPerStep: 0.741, peakAllocGib: 71.86, warmupS: 3.9 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_FLUX1, "2026-12-05", { note: "494 modules" }),
  allLinear({ base: "flux1-dev", config: "fast + fp8 GEMMs + LoRA bf16", levers: ["fused", "compile", "fp8mm", "lora_bf16"], secondsPerStep: 0.408, peakAllocGib: 52.21, warmupS: 66.3 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_FLUX1, "2026-12-05", { note: "494 modules; loss check pass" }),
  allLinear({ base: "flux1-dev", config: "eager", levers: [], secondsPerStep: 0.703, peakAllocGib: 71.86, warmupS: 3.6 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_FLUX1_1204, "2026-12-04", { note: "494 modules" }),
  allLinear({ base: "flux1-dev", config: "fast + fp8 GEMMs + LoRA bf16", levers: ["fused", "compile", "fp8mm", "lora_bf16"], secondsPerStep: 0.424, peakAllocGib: 52.21, warmupS: 67.9 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_FLUX1_1204, "2026-12-04", { note: "494 modules; loss check pass" }),
  allLinear({ base: "flux2-klein-4b", config: "eager", levers: [], secondsPerStep: 0.318, peakAllocGib: 26.29, warmupS: 1.7 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_KLEIN_1204, "2026-12-04", { note: "100 modules" }),
  allLinear({ base: "flux2-klein-4b", config: "fast", levers: ["fused", "compile"], secondsPerStep: 0.215, peakAllocGib: 23.71, warmupS: 27.4 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_KLEIN_1204, "2026-12-04", { note: "100 modules; loss check pass" }),
  allLinear({ base: "flux2-klein-4b", config: "fast + LoRA bf16", levers: ["fused", "compile", "lora_bf16"], secondsPerStep: 0.204, peakAllocGib: 20.11, warmupS: 21.4 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_KLEIN_1204, "2026-12-04", { note: "100 modules; loss check pass" }),
  allLinear({ base: "flux2-klein-4b", config: "fast + fp8 GEMMs + LoRA bf16", levers: ["fused", "compile", "fp8mm", "lora_bf16"], secondsPerStep: 0.178, peakAllocGib: 20.23, warmupS: 26.8 }, TRAIN_SPEED_SOURCE_ALL_LINEAR_KLEIN_1204, "2026-12-04", { note: "100 modules; loss check pass" }),
];

/**
 * The LoRA path in bf16 against its fp32 twin, both measured in one run (same base, levers, kernel; attention preset,
 * batch 1, no checkpointing): the lever's measured ratio where a configuration's bf16 row is missing and its fp32 row
 * is not (plan/walltime.ts: FLUX.1 and klein with FA4, measured with the LoRA in fp32 only, are timed by the twin of
 * their levers with torch's kernel). Where the bf16 row is itself a record above, its twin here may be a row that is
 * not (the run's own fp32 line: FLUX.1's 0.396, SDXL's 0.106), so the ratio never mixes two leases.
 */
export interface LoraBf16Twin extends Sourced {
  base: BaseModelId;
  /** The fp32 twin's levers (the bf16 row adds "lora_bf16"). */
  levers: readonly SpeedLever[];
  attention?: "fa4";
  fp32SecondsPerStep: number;
  bf16SecondsPerStep: number;
}

export const LORA_BF16_TWINS: readonly LoraBf16Twin[] = [
  { base: "sdxl", levers: ["fused", "channels_last"], fp32SecondsPerStep: 0.598, bf16SecondsPerStep: 0.535, source: TRAIN_SPEED_SOURCE_LORA_BF16, asOf: "2026-12-03" },
  { base: "sdxl", levers: ["fused", "channels_last", "graphs"], fp32SecondsPerStep: 0.106, bf16SecondsPerStep: 0.092, source: TRAIN_SPEED_SOURCE_LORA_BF16, asOf: "2026-12-03" },
  { base: "sdxl", levers: ["fused", "channels_last", "compile", "graphs"], fp32SecondsPerStep: 0.083, bf16SecondsPerStep: 0.078, source: TRAIN_SPEED_SOURCE_LORA_BF16_COMPILE, asOf: "2026-12-03" },
  { base: "flux1-dev", levers: ["fused"], fp32SecondsPerStep: 0.556, bf16SecondsPerStep: 0.513, source: TRAIN_SPEED_SOURCE_LORA_BF16_FLUX1, asOf: "2026-12-04" },
  { base: "flux1-dev", levers: ["fused", "compile", "fp8mm"], fp32SecondsPerStep: 0.396, bf16SecondsPerStep: 0.383, source: TRAIN_SPEED_SOURCE_LORA_BF16_FLUX1, asOf: "2026-12-04" },
  { base: "flux2-klein-4b", levers: [], fp32SecondsPerStep: 0.291, bf16SecondsPerStep: 0.262, source: TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN, asOf: "2026-12-04" },
  { base: "flux2-klein-4b", levers: ["fused", "compile"], fp32SecondsPerStep: 0.202, bf16SecondsPerStep: 0.195, source: TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN, asOf: "2026-12-04" },
  { base: "flux2-klein-4b", levers: ["fused", "compile", "fp8mm"], fp32SecondsPerStep: 0.178, bf16SecondsPerStep: 0.17, source: TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN, asOf: "2026-12-04" },
  { base: "flux2-klein-9b", levers: [], fp32SecondsPerStep: 0.524, bf16SecondsPerStep: 0.467, source: TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN, asOf: "2026-12-04" },
  { base: "flux2-klein-9b", levers: ["fused", "compile"], fp32SecondsPerStep: 0.381, bf16SecondsPerStep: 0.367, source: TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN, asOf: "2026-12-04" },
  { base: "flux2-klein-9b", levers: ["fused", "compile", "fp8mm"], fp32SecondsPerStep: 0.316, bf16SecondsPerStep: 0.3, source: TRAIN_SPEED_SOURCE_LORA_BF16_KLEIN, asOf: "2026-12-04" },
];

/** The CUDA context the bench measured once per process; add it to peakAllocGib for what the card must hold. */
export const CUDA_CONTEXT: Sourced & { gib: number } = { gib: 0.51, source: S, asOf: A };

/**
 * The first torch.compile of a process (regional compile of the repeated blocks), seconds: what a
 * run pays before compiling saves anything. SDXL's 159 s is why SDXL uses the CUDA graph instead.
 */
export const COMPILE_WARMUP_S: Readonly<Partial<Record<BaseModelId, Sourced & { seconds: number }>>> = {
  sdxl: { seconds: 159, source: S, asOf: A },
  "flux1-dev": { seconds: 41, source: S, asOf: A },
  "flux2-klein-4b": { seconds: 34, source: S, asOf: A },
  "flux2-klein-9b": { seconds: 23, source: S, asOf: A },
};

/** Bases trained with another base's measurements (same network, a shorter text length). */
export const SPEED_PROXY: Readonly<Partial<Record<BaseModelId, BaseModelId>>> = { "flux1-schnell": "flux1-dev" };

/** The measured rows of a base (through its proxy). */
export function trainSpeedsFor(base: BaseModelId): TrainSpeedRecord[] {
  const measured = SPEED_PROXY[base] ?? base;
  return TRAIN_SPEEDS.filter((r) => r.base === measured);
}
