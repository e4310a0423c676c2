import type { Sourced } from "./types.js";

/**
 * The attention kernels the built-in trainer can run (issue 22): "sdpa" is torch's own
 * scaled_dot_product_attention (its flash kernel); "fa4" is FlashAttention-4 (flash-attn-4's CuTe DSL
 * kernels) routed under the same SDPA calls through torch's flash-attention registry
 * (torch.nn.attention.activate_flash_attention_impl("FA4")). Core decides (plan/attention.ts); the worker
 * activates or refuses it (worker/loraspec_worker/train/attention.py) with BUILTIN_TRAINER.refusals.attention.
 */
export const ATTENTION_KERNELS = ["sdpa", "fa4"] as const;
export type AttentionKernel = (typeof ATTENTION_KERNELS)[number];

export interface HeadDimRange {
  min: number;
  max: number;
  /** 16 bytes of alignment: 8 elements for bf16/fp16 (interface.py `alignment = 16 // v.element_size()`). */
  multipleOf: number;
}

export interface Fa4KernelRecord extends Sourced {
  /** The wheels worker/requirements-fa4.txt pins (PyPI; the versions measured on the H200). */
  packages: readonly string[];
  /** The line the fallback warning's hint names. */
  install: string;
  /** torch's FA4 impl refuses every other major: `_fa4_common_support_error` (torch/nn/attention/_fa4.py). */
  computeCapabilityMajors: readonly number[];
  capabilitySource: string;
  /** Head dims flash_attn.cute accepts per compute-capability major (q and v alike); torch's FA4 impl raises on others, it does not fall back. */
  headDims: Readonly<Record<string, HeadDimRange>>;
  headDimSource: string;
  /** Worker arches whose attention FA4 runs faster than torch's kernel on the H200: the plan chooses it only for these. */
  fasterArches: readonly string[];
  /** Arches measured slower, and by how much (the plan's reason for keeping torch's kernel). */
  slowerArches: Readonly<Record<string, string>>;
  /** The probe's fwd+bwd figure for the faster arches' joint attention, in words. */
  measured: string;
  /** The training step it buys, in words (the same session's rows with and without FA4). */
  measuredTraining: string;
  measuredSource: string;
  /**
   * flash-attn-4's on-disk kernel cache (off by default; read once, when flash_attn.cute imports): the worker turns
   * it on into compileCache.fa4Dir of the compile cache folder core sends (one subfolder per compute capability:
   * some of its cache keys leave the arch out), so a later run loads the kernels the
   * first one compiled instead of compiling them again (CuTe DSL compiles each kernel at its first call).
   */
  persistentCache: Sourced & { enabledEnv: string; dirEnv: string };
}

const FA4_PACKAGES = ["flash-attn-4==4.0.0b36", "nvidia-cutlass-dsl[cu13]==4.8.1"] as const;

export const FA4_KERNEL: Fa4KernelRecord = {
  packages: FA4_PACKAGES,
  install: `pip install ${FA4_PACKAGES.map((p) => (p.includes("[") ? `'${p}'` : p)).join(" ")} (worker/requirements-fa4.txt) into the worker's venv`,
  computeCapabilityMajors: [9, 10],
  capabilitySource:
    'torch/nn/attention/_fa4.py _fa4_common_support_error: `if _get_device_major(query.device) not in (9, 10): return "FA4 requires compute capability 9.0 or 10.0"` (read in torch 2.13.0 L110; torch 2.11.0+cu130 ran it on the H200)',
  headDims: {
    "9": { min: 8, max: 256, multipleOf: 8 },
    "10": { min: 8, max: 128, multipleOf: 8 },
  },
  headDimSource:
    "flash-attn-4 4.0.0b36 flash_attn/cute/interface.py _validate_head_dims (L121-L138): SM90 8..256, SM100/SM110 8..128 (plus (192, 128) and (256, 256) shapes this trainer does not use), divisible by 16 bytes / element size",
  fasterArches: ["flux1", "flux2-klein"],
  slowerArches: {
    sdxl: "SDXL's head dim 64 attention is slower with FA4 on the H200 (fwd+bwd 0.85 vs 0.68 ms at 4096 tokens, 0.79 vs 0.42 ms at 1024, cross-attention 1.15 vs 0.40 ms)",
  },
  measured: "FLUX.1 joint attention (1x24x4608x128) fwd+bwd 1.44 vs 3.09 ms with torch's flash kernel on the H200 (634 TFLOP/s), max difference 7e-4",
  measuredTraining: "FLUX.1 compile + fp8 GEMMs 0.381 -> 0.306 s/step",
  measuredSource: "bench/fa4-probe.py, bench/data/fa4-probe-h200-2026-12-03.jsonl",
  persistentCache: {
    enabledEnv: "FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED",
    dirEnv: "FLASH_ATTENTION_CUTE_DSL_CACHE_DIR",
    source:
      "flash-attn-4 4.0.0b36 flash_attn/cute/cache_utils.py L33-L39 (CUTE_DSL_CACHE_ENABLED = os.getenv(\"FLASH_ATTENTION_CUTE_DSL_CACHE_ENABLED\", \"0\") == \"1\"; the folder from FLASH_ATTENTION_CUTE_DSL_CACHE_DIR), JITPersistentCache (entries under a fingerprint of its sources, cutlass and tvm_ffi versions; written to a temporary name and renamed under a file lock; an unloadable entry is recompiled)",
    asOf: "2026-12-06",
  },
  source: "https://pypi.org/project/flash-attn-4/4.0.0b36/ (Requires-Dist nvidia-cutlass-dsl>=4.6.2; extra cu13: nvidia-cutlass-dsl[cu13]); https://pypi.org/project/nvidia-cutlass-dsl/4.8.1/ (extra cu13: nvidia-cutlass-dsl-libs-cu13==4.8.1)",
  asOf: "2026-12-03",
};
