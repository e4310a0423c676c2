import type { Contract } from "../contract/schema.js";
import { FA4_KERNEL, type AttentionKernel } from "../knowledge/attention.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { builtinArchOf } from "../knowledge/builtin-trainer.js";
import { COMPUTE_CAPABILITY_SOURCE, findGpu, type GpuRecord } from "../knowledge/gpus.js";
import { TRAIN_SPEED_SOURCE_FA4 } from "../knowledge/train-speed.js";
import type { SettingChoice } from "./train-settings.js";

/** torch's FA4 impl runs on this card (its compute-capability major is in FA4_KERNEL's list). */
export function fa4RunsOn(gpu: GpuRecord): boolean {
  return FA4_KERNEL.computeCapabilityMajors.includes(gpu.computeCapability[0]);
}

/**
 * The built-in trainer's attention kernel: FlashAttention-4 where it was measured faster (FA4_KERNEL.fasterArches)
 * and the card's compute capability is one torch's FA4 impl accepts; torch's own kernel otherwise. A card the
 * contract does not name: FA4, left to the worker, which refuses it (W_ATTENTION_FALLBACK) where it cannot run.
 */
export function attentionFor(contract: Contract, model: BaseModelRecord): { attention: AttentionKernel; choice: SettingChoice } {
  const say = (attention: AttentionKernel, why: string, source: string) => ({ attention, choice: { setting: "attention" as const, value: attention, why, source } });
  const { arch } = builtinArchOf(model.id);
  const slower = FA4_KERNEL.slowerArches[arch];
  if (slower) return say("sdpa", `sdpa (torch's kernel): ${slower}`, FA4_KERNEL.measuredSource);
  if (!FA4_KERNEL.fasterArches.includes(arch)) return say("sdpa", `sdpa (torch's kernel): FlashAttention-4 is not measured for ${arch}`, FA4_KERNEL.measuredSource);
  const gpu = findGpu(contract.hardware.gpu);
  if (gpu && !fa4RunsOn(gpu)) {
    const [major, minor] = gpu.computeCapability;
    return say(
      "sdpa",
      `sdpa (torch's kernel): the ${gpu.label} is compute capability ${major}.${minor}; torch's FlashAttention-4 runs on ${FA4_KERNEL.computeCapabilityMajors.map((m) => `${m}.x`).join(" and ")} only`,
      `${COMPUTE_CAPABILITY_SOURCE}; ${FA4_KERNEL.capabilitySource}`,
    );
  }
  return say(
    "fa4",
    `fa4: FlashAttention-4 through torch's SDPA (${FA4_KERNEL.measured}; ${FA4_KERNEL.measuredTraining}). Needs ${FA4_KERNEL.install}; without it the worker keeps torch's kernel with W_ATTENTION_FALLBACK`,
    `${FA4_KERNEL.measuredSource}; ${TRAIN_SPEED_SOURCE_FA4}`,
  );
}
