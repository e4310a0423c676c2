import type { NetworkType } from "../contract/ids.js";
import type { Sourced } from "./types.js";

/**
 * What each adapter kind (network.type) costs over a plain LoRA of the same rank on the same
 * modules, measured on an H200 (bench/gpu-speed.py --networks, 2026-12-02): each kind's step and
 * peak against its LoRA twin, SDXL's UNet and FLUX.1 [dev] eager on the attention preset. The plan
 * (plan/network-cost.ts) takes the ratios from these rows and scales them to wider presets, other
 * resolutions, batches and checkpointing by what the adapter does (peft 0.21.2, the worker's pin;
 * LyCORIS builds them the same way).
 */

/** The two measured families; every other (FLUX-class) transformer takes FLUX.1's rows. */
export type NetworkCostFamily = "sdxl" | "flux1";

/** One row of the bench file, to the digits shown (test/plan/network-type-data.spec.ts reads the file). */
export interface NetworkTypeRow {
  /** s_per_step, mean of the 30 timed steps. */
  secondsPerStep: number;
  /** peak_alloc_gib: torch.cuda.max_memory_allocated, GiB. */
  peakAllocGib: number;
  /** weights_and_lora_state_gib: the model, the adapter and its AdamW state before the first step, GiB. */
  stateGib: number;
}

export const NETWORK_BENCH = {
  source:
    "bench/data/gpu-speed-h200-2026-12-02-networks.jsonl (NVIDIA H200, torch 2.11.0+cu130, bf16 GEMM 785 TFLOP/s; bench/gpu-speed.py --configs 0,10 --networks lora,dora,lokr,loha --steps 30 --warmup 5: eager, attention preset, 1024², batch 1, rank 16, bf16 base, fp32 adapter, AdamW)",
  asOf: "2026-12-02",
  /** The rows' base models (their tokens, width and blocks are the scale's reference). */
  base: { sdxl: "sdxl", flux1: "flux1-dev" },
  /** Adapted modules of the attention preset (the file's lora_modules). */
  modules: { sdxl: 560, flux1: 266 },
  rows: {
    sdxl: {
      lora: { secondsPerStep: 0.421, peakAllocGib: 12.53, stateGib: 5.13 },
      dora: { secondsPerStep: 0.941, peakAllocGib: 16.18, stateGib: 5.14 },
      lokr: { secondsPerStep: 0.545, peakAllocGib: 14.56, stateGib: 4.8 },
      loha: { secondsPerStep: 0.695, peakAllocGib: 15.06, stateGib: 5.47 },
    },
    flux1: {
      lora: { secondsPerStep: 0.554, peakAllocGib: 50.09, stateGib: 22.56 },
      dora: { secondsPerStep: 0.718, peakAllocGib: 65.17, stateGib: 22.57 },
      lokr: { secondsPerStep: 0.766, peakAllocGib: 58.9, stateGib: 22.19 },
      loha: { secondsPerStep: 0.78, peakAllocGib: 59.46, stateGib: 22.95 },
    },
  } satisfies Record<NetworkCostFamily, Record<NetworkType, NetworkTypeRow>>,
} as const;

/**
 * What an adapter keeps for the backward beyond LoRA's: nothing; `saved-outputs` (DoRA: two
 * activations per adapted module, so it follows tokens x output width); `dense-delta` (LoKr/LoHa:
 * one full-size fp32 ΔW per adapted module, so it follows the adapted weights, not the tokens).
 */
export type NetworkMemoryKind = "none" | "saved-outputs" | "dense-delta";

export interface NetworkTypeCost extends Sourced {
  /** true: NETWORK_BENCH holds its rows. */
  measured: boolean;
  /** Why the step costs more, in one line (shown in the plan). */
  why: string;
  memory: NetworkMemoryKind;
  /** Why the peak is higher, in one line (shown in the VRAM assumptions). */
  memoryWhy: string;
}

const PEFT = "huggingface/peft 0.21.2 (worker pin)";
const AS_OF = "2026-12-02";
/**
 * The share of a step's GEMM work in the attention projections (the preset the rows trained):
 * FLUX.1 q, k, v, out are 4h² of a double-block stream's 12h² (with the MLP's 8h²), q, k, v 3h² of a
 * single block's 12h², linear layers ~80% of the FLOPs at 4,096 tokens (attention itself the rest).
 */
export const ATTENTION_GEMM_SHARE = {
  value: 0.25,
  source: "ours: black-forest-labs/FLUX.1-dev transformer/config.json (hidden 3072, mlp_ratio 4, 19 double + 38 single blocks), counted",
  asOf: AS_OF,
} as const;
/** Every linear layer (attention-mlp, all-linear, a wider module list): ~80% of the GEMM FLOPs at 4,096 tokens, the rest attention itself. */
export const LINEAR_GEMM_SHARE = {
  value: 0.8,
  source: "ours: FLUX.1 at 1024² (4,608 tokens): attention's 4·N²·h per block against the linears' 24·N·h², counted",
  asOf: AS_OF,
} as const;
/**
 * Output features per token of every linear over the attention projections' (DoRA's saved outputs
 * follow them): FLUX.1 190h (19 double blocks x 4 + 38 single x 3) against 475h (+ the MLPs' 4h + h
 * per double-block stream and single block); SDXL 6C against 15C per transformer block (+ GEGLU 8C + C).
 */
export const LINEAR_OUTPUTS_OVER_ATTENTION = {
  value: 2.5,
  source: "ours: FLUX.1-dev transformer/config.json and SDXL unet/config.json (diffusers attention and feed-forward modules), counted",
  asOf: AS_OF,
} as const;

const DORA_SAVED =
  "the base output (bf16) and the LoRA output (fp32) kept for the magnitude's gradient, 6 B per token x output feature per adapted module";

export const NETWORK_TYPE_COSTS: Readonly<Record<NetworkType, NetworkTypeCost>> = {
  lora: {
    measured: true,
    why: "the speed and VRAM rows trained a LoRA",
    memory: "none",
    memoryWhy: "the rows' own adapter",
    source: "bench/RESULTS.md (every built-in and Kohya row: LoRA rank 16)",
    asOf: AS_OF,
  },
  dora: {
    measured: true,
    why: "DoRA takes each adapted weight's column norm of W + s·BA every step (an fp32 d_out x d_in pass, plus BA through an identity) and scales the output element-wise: a dozen small kernels per module, which SDXL's launch-bound eager step pays most",
    memory: "saved-outputs",
    memoryWhy: DORA_SAVED,
    source: `${NETWORK_BENCH.source}; ${PEFT} tuners/lora/dora.py DoraLinearLayer.forward (weight.to(x.dtype), get_lora_weight via torch.eye, get_weight_norm detached per DoRA paper §4.3 arXiv 2402.09353; result_dora = (mag_norm_scale - 1) * base_result + mag_norm_scale * lora_result * scaling saves base_result and lora_result)`,
    asOf: AS_OF,
  },
  lokr: {
    measured: true,
    why: "LoKr builds ΔW = w1 ⊗ w2 at full size every step and applies it with F.linear: one more dense GEMM forward and two backward per adapted module",
    memory: "dense-delta",
    memoryWhy: "the full-size fp32 ΔW of each adapted module kept for F.linear's backward",
    source: `${NETWORK_BENCH.source}; ${PEFT} tuners/lokr/layer.py _get_delta_activations (get_delta_weight, then F.linear(input, delta_weight))`,
    asOf: AS_OF,
  },
  loha: {
    measured: true,
    why: "LoHa builds ΔW = (w1a·w1b) ∘ (w2a·w2b) at full size every step and applies it with F.linear: one more dense GEMM forward and two backward per adapted module, and the Hadamard product's own pass",
    memory: "dense-delta",
    memoryWhy: "the full-size fp32 ΔW of each adapted module kept for F.linear's backward",
    source: `${NETWORK_BENCH.source}; ${PEFT} tuners/loha/layer.py _get_delta_activations (HadaWeight recomputes its factors; F.linear(input, delta_weight))`,
    asOf: AS_OF,
  },
};

/**
 * The split of one dimension LyCORIS and peft make for LoKr: `factor` -1 gives the largest m <= sqrt(dim)
 * dividing it; a positive factor is used when it divides dim (m, n with m <= n).
 */
export function lokrSplit(dim: number, factor: number): [number, number] {
  if (factor > 0 && dim % factor === 0) {
    const other = dim / factor;
    return factor <= other ? [factor, other] : [other, factor];
  }
  let m = Math.floor(Math.sqrt(dim));
  while (m > 1 && dim % m !== 0) m--;
  return [m, dim / m];
}

/**
 * Adapter parameters over LoRA's at the same rank, for a square hidden x hidden module (the
 * model's representative width): DoRA adds a magnitude per output (1 + 1/2r); LoHa holds two rank-r
 * pairs (2); LoKr holds w1 (m x m, full) and w2 (n x n, as w2_a·w2_b of rank r when r < n/2, else full).
 */
export function adapterParamsFactor(type: NetworkType, rank: number, hidden: number, factor: number): number {
  const lora = rank * 2 * hidden;
  if (type === "dora") return (lora + hidden) / lora;
  if (type === "loha") return 2;
  if (type === "lokr") {
    const [m, n] = lokrSplit(hidden, factor);
    const w2 = rank < n / 2 ? 2 * n * rank : n * n;
    return (m * m + w2) / lora;
  }
  return 1;
}

export const ADAPTER_PARAMS_SOURCE = `${PEFT} tuners/lokr/layer.py (factorization, use_w2 = r >= max(shape) / 2), tuners/loha/layer.py (hada_w1_a/b, hada_w2_a/b), tuners/lora/dora.py (magnitude [out_features]); KohakuBlueleaf/LyCORIS@f49d30d lycoris/functional/lokr.py (same split)`;
