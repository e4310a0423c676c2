import type { ModelFamily } from "./base-models.js";
import type { Sourced } from "./types.js";

/**
 * GPU classes for walltime estimates. `achievedTflops` is what LoRA training reaches in practice
 * (bf16, frozen base), not the datasheet peak: perf-reliability.md §1.4 measured ~70 on a 4090 and
 * ~54 on an H100 for Flux; the rest are scaled from those by us and marked unverified.
 */
export interface GpuRecord extends Sourced {
  id: string;
  label: string;
  /** Names users write in `hardware.gpu`, lower-case, matched as substrings. */
  aliases: readonly string[];
  vramGb: number;
  achievedTflops: number;
  /** Datasheet dense bf16 tensor TFLOP/s (FP32 accumulate): scales the built-in trainer's H200 measurements for compute-bound models. */
  denseBf16Tflops: number;
  /** Datasheet memory bandwidth, TB/s (MEM_BANDWIDTH_SOURCE): scales the memory-bound share of a step. */
  memBandwidthTBs: number;
  /** float8 tensor cores (Ada, Hopper, Blackwell: compute capability 8.9+). See FP8_TENSOR_CORES_SOURCE. */
  fp8TensorCores: boolean;
  /**
   * torch._scaled_mm with row-wise scales runs here (the built-in trainer's fp8 GEMMs): Hopper only,
   * not Ada (sm89) or the RTX Blackwell cards (sm120). See FP8_ROWWISE_SOURCE.
   */
  fp8RowwiseGemm: boolean;
  /** CUDA compute capability [major, minor] (COMPUTE_CAPABILITY_SOURCE): which kernels run here (FlashAttention-4: knowledge/attention.ts). */
  computeCapability: readonly [number, number];
}

const P14 = "shared/reference/perf-reliability.md §1.4 (floor FLOPs / reported s/step)";
const OURS = "ours: scaled from the 4090/H100 figures of perf-reliability.md §1.4 by dense bf16 peak";
const AS_OF = "2026-08-23";
/**
 * denseBf16Tflops: NVIDIA datasheets / architecture whitepapers (GeForce cards at the FP32-accumulate
 * rate, half their FP16-accumulate figure), read 2026-11-29, not in the reference notes; the H200's
 * 989 is in perf-reliability.md (top), which measured ~790 for a bf16 GEMM (the bench: 746-774).
 */
export const DENSE_BF16_SOURCE =
  "NVIDIA datasheets / architecture whitepapers, dense bf16 with FP32 accumulate (read 2026-11-29, unverified in the reference notes)";

/** memBandwidthTBs: NVIDIA product pages / datasheets (SXM parts for A100, H100, H200). */
export const MEM_BANDWIDTH_SOURCE =
  "NVIDIA product pages and datasheets: RTX 3060 360 GB/s, 3090 936, 4090 1008, 5090 1792, RTX A6000 768, L40S 864, A100 80GB SXM 2039, H100 SXM 3350, H200 4800 (read 2026-12-02)";

/** fp8TensorCores: NVIDIA's Ada (RTX 40, L40S), Hopper (H100, H200) and Blackwell (RTX 50) whitepapers; Ampere (RTX 30, A6000, A100) has none. */
export const FP8_TENSOR_CORES_SOURCE =
  "NVIDIA Ada, Hopper and Blackwell architecture whitepapers (FP8 tensor cores from compute capability 8.9; Ampere has none), read 2026-11-29";

/** fp8RowwiseGemm: PyTorch's row-wise scaled fp8 GEMM is a Hopper (sm90) CUTLASS kernel. */
export const FP8_ROWWISE_SOURCE =
  "pytorch/pytorch #133612 and #135718 (row-wise scaling uses sm90 features such as TMA: tests skipped on sm89), #192707 (row-wise scaling CUBLAS_STATUS_NOT_SUPPORTED on sm120, torch 2.10, 2026-08); measured on an H200 here";

/** computeCapability: NVIDIA's CUDA GPUs table. */
export const COMPUTE_CAPABILITY_SOURCE =
  "https://developer.nvidia.com/cuda-gpus (RTX 3060/3090/A6000 8.6, A100 8.0, RTX 4090/L40S 8.9, H100/H200 9.0, B200 10.0, RTX 5090 12.0), read 2026-12-03";

/** The B200 record (added for FlashAttention-4's compute capability 10.x): datasheet figures, no measurement of ours. */
const B200_SOURCE =
  "NVIDIA HGX B200 datasheet (180 GB HBM3e, 8 TB/s, dense BF16 2.25 PFLOP/s per GPU), read 2026-12-03; achievedTflops scaled from the H100's like the others; fp8RowwiseGemm false until measured (torch's row-wise kernel is checked on Hopper only here)";

export const GPUS: readonly GpuRecord[] = [
  { id: "rtx3060", label: "RTX 3060 12GB", aliases: ["3060"], vramGb: 12, achievedTflops: 15, denseBf16Tflops: 25.6, memBandwidthTBs: 0.36, fp8TensorCores: false, fp8RowwiseGemm: false, computeCapability: [8, 6], source: OURS, asOf: AS_OF, verified: false },
  { id: "rtx3090", label: "RTX 3090 24GB", aliases: ["3090"], vramGb: 24, achievedTflops: 35, denseBf16Tflops: 71, memBandwidthTBs: 0.936, fp8TensorCores: false, fp8RowwiseGemm: false, computeCapability: [8, 6], source: OURS, asOf: AS_OF, verified: false },
  { id: "rtx4090", label: "RTX 4090 24GB", aliases: ["4090"], vramGb: 24, achievedTflops: 70, denseBf16Tflops: 165.2, memBandwidthTBs: 1.008, fp8TensorCores: true, fp8RowwiseGemm: false, computeCapability: [8, 9], source: P14, asOf: AS_OF },
  { id: "rtx5090", label: "RTX 5090 32GB", aliases: ["5090"], vramGb: 32, achievedTflops: 90, denseBf16Tflops: 209.5, memBandwidthTBs: 1.792, fp8TensorCores: true, fp8RowwiseGemm: false, computeCapability: [12, 0], source: OURS, asOf: AS_OF, verified: false },
  { id: "a6000", label: "RTX A6000 48GB", aliases: ["a6000"], vramGb: 48, achievedTflops: 30, denseBf16Tflops: 154.8, memBandwidthTBs: 0.768, fp8TensorCores: false, fp8RowwiseGemm: false, computeCapability: [8, 6], source: `${OURS}; kohya A6000 8.25 s/it rank 128 (perf-reliability.md §1.1)`, asOf: AS_OF, verified: false },
  { id: "l40s", label: "L40S 48GB", aliases: ["l40"], vramGb: 48, achievedTflops: 60, denseBf16Tflops: 362, memBandwidthTBs: 0.864, fp8TensorCores: true, fp8RowwiseGemm: false, computeCapability: [8, 9], source: OURS, asOf: AS_OF, verified: false },
  { id: "a100", label: "A100 80GB", aliases: ["a100"], vramGb: 80, achievedTflops: 45, denseBf16Tflops: 312, memBandwidthTBs: 2.039, fp8TensorCores: false, fp8RowwiseGemm: false, computeCapability: [8, 0], source: OURS, asOf: AS_OF, verified: false },
  { id: "h100", label: "H100 80GB", aliases: ["h100"], vramGb: 80, achievedTflops: 54, denseBf16Tflops: 989, memBandwidthTBs: 3.35, fp8TensorCores: true, fp8RowwiseGemm: true, computeCapability: [9, 0], source: P14, asOf: AS_OF },
  { id: "h200", label: "H200 141GB", aliases: ["h200"], vramGb: 141, achievedTflops: 60, denseBf16Tflops: 989, memBandwidthTBs: 4.8, fp8TensorCores: true, fp8RowwiseGemm: true, computeCapability: [9, 0], source: OURS, asOf: AS_OF, verified: false },
  { id: "b200", label: "B200 180GB", aliases: ["b200"], vramGb: 180, achievedTflops: 123, denseBf16Tflops: 2250, memBandwidthTBs: 8, fp8TensorCores: true, fp8RowwiseGemm: false, computeCapability: [10, 0], source: B200_SOURCE, asOf: "2026-12-03", verified: false },
];

/** Finds the GPU class a user wrote ("RTX 4090", "NVIDIA H100 80GB HBM3"). */
export function findGpu(name: string | undefined): GpuRecord | undefined {
  if (!name) return undefined;
  const n = name.toLowerCase();
  return GPUS.find((g) => g.id === n || g.aliases.some((a) => n.includes(a)));
}

/** Measured s/step wins over the FLOP model where it exists (SDXL is overhead-bound, §1.4 takeaway 2). */
export interface SpeedRecord extends Sourced {
  family: ModelFamily;
  gpu: string;
  resolution: number;
  batch: number;
  secondsPerStep: number;
}

const P11 = "shared/reference/perf-reliability.md §1.1";

export const SPEEDS: readonly SpeedRecord[] = [
  { family: "sdxl", gpu: "rtx4090", resolution: 1024, batch: 1, secondsPerStep: 0.93, source: `${P11} (bmaltais/kohya_ss#1288, 1.08 it/s)`, asOf: "2023-09-21" },
  { family: "sdxl", gpu: "rtx3090", resolution: 1024, batch: 1, secondsPerStep: 1.23, source: `${P11} (kohya_ss#1288)`, asOf: "2023-08-01" },
  { family: "sdxl", gpu: "rtx3060", resolution: 1024, batch: 1, secondsPerStep: 2.6, source: `${P11} (kohya_ss#1288, 2.4-2.8 s/it)`, asOf: "2023-08-01" },
  { family: "flux1", gpu: "rtx4090", resolution: 1024, batch: 1, secondsPerStep: 3.5, source: `${P11} (SimpleTuner quickstart/FLUX.md, NF4)`, asOf: "2026-08-23" },
];

/** Fixed per-step overhead (data loading, optimizer, logging) added to the FLOP model. */
export const STEP_OVERHEAD_S: Sourced & { seconds: number } = {
  seconds: 0.15,
  source: "ours: perf-reliability.md §1.4 takeaway 1 (s/step = FLOPs/(peak x MFU) + fixed overhead); to be fitted from our GPU runs",
  asOf: "2026-11-29",
  verified: false,
};
