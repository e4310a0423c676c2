import type { NetworkType } from "../contract/ids.js";
import type { Sourced } from "./types.js";

/**
 * What each adapter kind (network.type) costs over a plain LoRA of the same rank on the same
 * modules: step time, adapter parameters, and memory the LoRA rows do not hold. Every speed and
 * VRAM row we measured trained a LoRA; these factors move them to DoRA, LoKr and LoHa. Until
 * bench/gpu-speed.py --networks measures them on the H200 they are estimates, derived from how the
 * trainers build each adapter (peft 0.21.2, the worker's pin; LyCORIS builds them the same way), and
 * the plan says so.
 */
export interface NetworkTypeCost extends Sourced {
  /** Extra work per adapted module, as a share of that module's own work in a LoRA step (0: none). */
  extraPerAdaptedWork: number;
  /** true once measured (bench/RESULTS.md "Adapter kinds"); false: a sourced estimate. */
  measured: boolean;
  /** Why, in one line (shown in the plan). */
  why: string;
  /**
   * The dense weight update (d_out x d_in per adapted module, fp32 like the adapter) built every step
   * and kept for the backward: LoKr and LoHa apply ΔW with F.linear.
   */
  denseDelta: boolean;
}

const PEFT = "huggingface/peft 0.21.2 (worker pin)";
const AS_OF = "2026-12-02";
/**
 * The share of a step's GEMM work in the attention projections (the preset the speed rows trained):
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
/** A dense ΔW adds one GEMM forward and two backward (input and ΔW gradients) to the frozen base's two: +1.5x of the module's work. */
const DENSE_EXTRA = 1.5;

export const NETWORK_TYPE_COSTS: Readonly<Record<NetworkType, NetworkTypeCost>> = {
  lora: {
    extraPerAdaptedWork: 0,
    measured: true,
    why: "the speed and VRAM rows trained a LoRA",
    denseDelta: false,
    source: "bench/RESULTS.md (every built-in and Kohya row: LoRA rank 16)",
    asOf: AS_OF,
  },
  dora: {
    // Memory traffic and launches, not GEMMs: ~+40% of the adapted modules' time (x1.1 on the attention preset).
    extraPerAdaptedWork: 0.4,
    measured: false,
    why: "DoRA takes each adapted weight's column norm of W + s·BA every step (a d_out x d_in pass) and scales the output element-wise; the base output is reused (lora_dropout 0), so no extra GEMM",
    denseDelta: false,
    source: `${PEFT} tuners/lora/dora.py DoraLinearLayer.forward (get_weight_norm on weight + scaling * lora_weight, detached per DoRA paper §4.3, arXiv 2402.09353); ${ATTENTION_GEMM_SHARE.source}`,
    asOf: AS_OF,
  },
  lokr: {
    extraPerAdaptedWork: DENSE_EXTRA,
    measured: false,
    why: `LoKr builds ΔW = w1 ⊗ w2 at full size every step and applies it with F.linear: one more dense GEMM forward and two backward per adapted module (x${1 + DENSE_EXTRA} of its work)`,
    denseDelta: true,
    source: `${PEFT} tuners/lokr/layer.py _get_delta_activations (get_delta_weight, then F.linear(input, delta_weight)); ${ATTENTION_GEMM_SHARE.source}`,
    asOf: AS_OF,
  },
  loha: {
    extraPerAdaptedWork: DENSE_EXTRA,
    measured: false,
    why: `LoHa builds ΔW = (w1a·w1b) ∘ (w2a·w2b) at full size every step and applies it with F.linear: one more dense GEMM forward and two backward per adapted module (x${1 + DENSE_EXTRA} of its work)`,
    denseDelta: true,
    source: `${PEFT} tuners/loha/layer.py _get_delta_activations (HadaWeight recomputes its factors; F.linear(input, delta_weight)); ${ATTENTION_GEMM_SHARE.source}`,
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
