import type { Contract } from "../contract/schema.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { getBaseModel } from "../knowledge/base-models.js";
import { lokrFactor } from "../knowledge/network-types.js";
import {
  ADAPTER_PARAMS_SOURCE,
  ATTENTION_GEMM_SHARE,
  LINEAR_GEMM_SHARE,
  LINEAR_OUTPUTS_OVER_ATTENTION,
  NETWORK_BENCH,
  NETWORK_TYPE_COSTS,
  adapterParamsFactor,
  type NetworkCostFamily,
} from "../knowledge/network-type-cost.js";
import { TARGET_SPEEDS } from "../knowledge/target-speed.js";
import { describeTargets } from "../compile/network-targets.js";

const GB_PER_GIB = 1024 ** 3 / 1e9;

/** The measured rows a base takes: SDXL's own, FLUX.1's for every transformer (derived for the others). */
function costFamily(model: BaseModelRecord): { family: NetworkCostFamily; derived: boolean } {
  if (model.family === "sdxl") return { family: "sdxl", derived: false };
  return { family: "flux1", derived: model.id !== NETWORK_BENCH.base.flux1 };
}

/** Whether the adapted modules are the rows' (attention) or wider (any other preset, taken as every linear layer). */
function presetOf(contract: Contract): { attention: boolean; preset: string } {
  const preset = describeTargets(contract).preset;
  return { attention: preset === "attention", preset };
}

/**
 * How the measured extra step time grows from the attention preset to every linear layer: SDXL's
 * eager step is launch-bound, so its extra follows the module count (722 all-linear modules against
 * the rows' 560); a GPU-bound transformer's follows the adapted work (the GEMM shares, ~80% / ~25%).
 */
function widerStepScale(family: NetworkCostFamily): { value: number; what: string; source: string } {
  if (family === "sdxl") {
    const all = TARGET_SPEEDS.find((r) => r.family === "sdxl" && r.levers === "eager")!;
    return { value: all.modules / NETWORK_BENCH.modules.sdxl, what: `module count ${all.modules}/${NETWORK_BENCH.modules.sdxl} (launch-bound)`, source: all.source };
  }
  return {
    value: LINEAR_GEMM_SHARE.value / ATTENTION_GEMM_SHARE.value,
    what: `adapted work ${Math.round(LINEAR_GEMM_SHARE.value * 100)}%/${Math.round(ATTENTION_GEMM_SHARE.value * 100)}% of the step`,
    source: `${ATTENTION_GEMM_SHARE.source}; ${LINEAR_GEMM_SHARE.source}`,
  };
}

/**
 * What network.type costs over a LoRA of the same rank (knowledge/network-type-cost.ts), for the
 * walltime (a step-time factor) and the VRAM model (adapter parameters; networkMemoryGb for what the
 * adapter keeps for the backward). `label` says what it was measured on, for the plan. Pure.
 */
export interface NetworkCost {
  type: Contract["network"]["type"];
  stepTimeFactor: number;
  paramsFactor: number;
  measured: boolean;
  /** One line for the plan: the factors, what they were measured on, how they were scaled, and why. */
  label: string;
  source: string;
}

export function networkCost(contract: Contract, model: BaseModelRecord): NetworkCost {
  const type = contract.network.type;
  const rec = NETWORK_TYPE_COSTS[type];
  const paramsFactor = adapterParamsFactor(type, contract.hyperparameters.rank, model.hidden, lokrFactor(contract.network.factor));
  if (type === "lora") return { type, stepTimeFactor: 1, paramsFactor, measured: true, label: "LoRA: the rows' own adapter", source: rec.source };
  const { family, derived } = costFamily(model);
  const rows = NETWORK_BENCH.rows[family];
  const onAttention = rows[type].secondsPerStep / rows.lora.secondsPerStep;
  const { attention, preset } = presetOf(contract);
  const scale = attention ? undefined : widerStepScale(family);
  const stepTimeFactor = Math.round((1 + (onAttention - 1) * (scale?.value ?? 1)) * 100) / 100;
  const rowsLabel = `${family === "sdxl" ? "SDXL" : "FLUX.1"} eager attention x ${onAttention.toFixed(2)}`;
  const how = [
    `measured on an H200 ${NETWORK_BENCH.asOf}: ${rowsLabel}`,
    derived ? `FLUX.1's rows for ${model.label}` : undefined,
    scale ? `${preset}: the extra x ${scale.value.toFixed(2)} for ${scale.what}` : undefined,
  ].filter(Boolean);
  const label = `${type}: step time x ${stepTimeFactor.toFixed(2)}, adapter params x ${paramsFactor.toFixed(paramsFactor < 0.1 ? 3 : 2)} over LoRA (${how.join("; ")}): ${rec.why}`;
  return { type, stepTimeFactor, paramsFactor, measured: rec.measured, label, source: `${rec.source}${scale ? `; ${scale.source}` : ""}; ${ADAPTER_PARAMS_SOURCE}` };
}

/**
 * GiB the adapter kind keeps for the backward beyond LoRA's, as measured: the row's peak over its
 * LoRA twin's, less the difference in what both held before the first step (the adapter and its
 * optimizer state, which the VRAM model counts from the parameter factor).
 */
export function measuredExtraGib(type: Contract["network"]["type"], family: NetworkCostFamily): number {
  const rows = NETWORK_BENCH.rows[family];
  return rows[type].peakAllocGib - rows.lora.peakAllocGib - (rows[type].stateGib - rows.lora.stateGib);
}

/**
 * GB (1e9) network.type keeps for the backward beyond LoRA's, for the VRAM model: the measured extra
 * (measuredExtraGib), scaled to the contract. DoRA's saved outputs follow tokens x batch x width x
 * blocks and the adapted output features (x 2.5 for every linear); LoKr/LoHa's dense ΔW follows the
 * adapted weights (the base's parameters, x 3.2 for every linear) and not the tokens. With gradient
 * checkpointing one block's (its forward is recomputed in the backward). undefined for LoRA.
 */
export function networkMemoryGb(contract: Contract, model: BaseModelRecord, tokensTimesBatch: number, gradientCheckpointing: boolean): { gb: number; assumption: string } | undefined {
  const type = contract.network.type;
  const rec = NETWORK_TYPE_COSTS[type];
  if (rec.memory === "none") return undefined;
  const { family, derived } = costFamily(model);
  const ref = getBaseModel(NETWORK_BENCH.base[family])!;
  const measured = measuredExtraGib(type, family);
  const { attention, preset } = presetOf(contract);
  let scale: number;
  let wider: number;
  if (rec.memory === "saved-outputs") {
    scale = (tokensTimesBatch * model.hidden * model.blocks) / (ref.tokensAtNative * ref.hidden * ref.blocks);
    wider = attention ? 1 : LINEAR_OUTPUTS_OVER_ATTENTION.value;
  } else {
    scale = model.paramsB / ref.paramsB;
    wider = attention ? 1 : LINEAR_GEMM_SHARE.value / ATTENTION_GEMM_SHARE.value;
  }
  const blocks = gradientCheckpointing ? 1 / model.blocks : 1;
  const gb = measured * GB_PER_GIB * scale * wider * blocks;
  const scaled = [
    Math.abs(scale - 1) > 1e-9 ? `x ${scale.toFixed(2)} ${rec.memory === "saved-outputs" ? "tokens x batch x width x blocks" : "base parameters"}${derived ? ` of ${model.label}` : ""}` : undefined,
    wider !== 1 ? `x ${wider.toFixed(1)} for ${preset} (every linear)` : undefined,
    gradientCheckpointing ? `one block's of ${model.blocks}: checkpointing recomputes` : undefined,
  ].filter(Boolean);
  const assumption = `${type}: +${gb.toFixed(1)} GB kept for the backward: ${rec.memoryWhy}; measured +${measured.toFixed(2)} GiB over LoRA on ${family === "sdxl" ? "SDXL" : "FLUX.1"}'s attention rows (H200, ${NETWORK_BENCH.asOf})${scaled.length ? `, ${scaled.join(", ")}` : ""}`;
  return { gb, assumption };
}
