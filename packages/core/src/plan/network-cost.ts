import type { Contract } from "../contract/schema.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { lokrFactor } from "../knowledge/network-types.js";
import { ADAPTER_PARAMS_SOURCE, ATTENTION_GEMM_SHARE, LINEAR_GEMM_SHARE, NETWORK_TYPE_COSTS, adapterParamsFactor } from "../knowledge/network-type-cost.js";
import { describeTargets } from "../compile/network-targets.js";

/** The share of the step's work in the adapted modules: the attention projections, or (any wider set) every linear layer. */
function adaptedShare(contract: Contract): { value: number; what: string; source: string } {
  const preset = describeTargets(contract).preset;
  return preset === "attention"
    ? { value: ATTENTION_GEMM_SHARE.value, what: "the attention projections", source: ATTENTION_GEMM_SHARE.source }
    : { value: LINEAR_GEMM_SHARE.value, what: `${preset}: taken as every linear layer`, source: LINEAR_GEMM_SHARE.source };
}

/**
 * What network.type costs over a LoRA of the same rank (knowledge/network-type-cost.ts), for the
 * walltime (a step-time factor) and the VRAM model (adapter parameters, the dense ΔW LoKr/LoHa keep
 * for the backward). `label` says measured or estimate, for the plan. Pure.
 */
export interface NetworkCost {
  type: Contract["network"]["type"];
  stepTimeFactor: number;
  paramsFactor: number;
  measured: boolean;
  /** One line for the plan: the factors, whether measured, and why. */
  label: string;
  source: string;
}

export function networkCost(contract: Contract, model: BaseModelRecord): NetworkCost {
  const type = contract.network.type;
  const rec = NETWORK_TYPE_COSTS[type];
  const share = adaptedShare(contract);
  const stepTimeFactor = Math.round((1 + share.value * rec.extraPerAdaptedWork) * 100) / 100;
  const paramsFactor = adapterParamsFactor(type, contract.hyperparameters.rank, model.hidden, lokrFactor(contract.network.factor));
  const label =
    type === "lora"
      ? "LoRA: the rows' own adapter"
      : `${type}: step time x ${stepTimeFactor.toFixed(2)}, adapter params x ${paramsFactor.toFixed(paramsFactor < 0.1 ? 3 : 2)} over LoRA (${rec.measured ? "measured" : "a sourced estimate until bench/gpu-speed.py --networks measures it"}): ${rec.why}; +${Math.round(rec.extraPerAdaptedWork * 100)}% on ${share.what}, ~${Math.round(share.value * 100)}% of the step`;
  return { type, stepTimeFactor, paramsFactor, measured: rec.measured, label, source: `${rec.source}; ${share.source}; ${ADAPTER_PARAMS_SOURCE}` };
}

/**
 * GB of the dense ΔW (fp32) LoKr/LoHa keep for the backward: as many elements as the adapted base
 * weights (the base's parameters x the adapted share), every block's without checkpointing, one
 * block's with it (recomputed).
 */
export function denseDeltaGb(contract: Contract, model: BaseModelRecord, gradientCheckpointing: boolean): number {
  if (!NETWORK_TYPE_COSTS[contract.network.type].denseDelta) return 0;
  const elements = model.paramsB * 1e9 * adaptedShare(contract).value;
  return ((gradientCheckpointing ? elements / model.blocks : elements) * 4) / 1e9;
}
