import type { Contract } from "../contract/schema.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { builtinArchOf } from "../knowledge/builtin-trainer.js";
import { LORA_COMPUTE, type LoraCompute } from "../knowledge/lora-compute.js";
import type { SettingChoice } from "./train-settings.js";

/**
 * The built-in trainer's LoRA compute dtype (knowledge/lora-compute.ts): "bf16" (the base's dtype, fp32 master
 * weights) for a plain LoRA over a bf16 base on an arch where it was measured on a GPU; "fp32" (peft's path,
 * today's numerics) otherwise, with the reason.
 */
export function loraComputeFor(contract: Contract, model: BaseModelRecord): { loraCompute: LoraCompute; choice: SettingChoice } {
  const say = (loraCompute: LoraCompute, why: string, source: string) => ({ loraCompute, choice: { setting: "lora_compute" as const, value: loraCompute, why, source } });
  const precision = contract.hyperparameters.precision;
  if (precision !== "bf16") return say("fp32", `fp32: the base runs in ${precision} (contract: hyperparameters.precision); bf16 LoRA compute is built over a bf16 base only`, "contract: hyperparameters.precision");
  if (contract.network.type !== "lora") {
    return say("fp32", `fp32: ${contract.network.type} keeps the LoRA path in fp32 (only a plain LoRA's linears compute in bf16)`, LORA_COMPUTE.source);
  }
  const measured = loraComputeMeasured(model);
  if (!measured) {
    return say(
      "fp32",
      `fp32 (peft's path: fp32 copies of each adapted layer's input): bf16 LoRA compute is not measured on a GPU yet for ${builtinArchOf(model.id).arch} (${LORA_COMPUTE.profiled}; ${LORA_COMPUTE.peers})`,
      `${LORA_COMPUTE.measuredSource}; ${LORA_COMPUTE.profiledSource}`,
    );
  }
  return say("bf16", `bf16: the LoRA path computes in the base's bf16 over fp32 master weights (${measured}; ${LORA_COMPUTE.peers})`, LORA_COMPUTE.measuredSource);
}

/** The measured figure (in words) of bf16 LoRA compute for this base's worker arch, if a GPU measured it. */
export function loraComputeMeasured(model: BaseModelRecord): string | undefined {
  return LORA_COMPUTE.measuredArches[builtinArchOf(model.id).arch];
}
