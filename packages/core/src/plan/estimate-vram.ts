import type { Contract } from "../contract/schema.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { resolveTrainSettings } from "./train-settings.js";
import { estimateVramWith, type VramEstimate, type VramSettings } from "./vram-model.js";

export type { VramEstimate, VramSettings } from "./vram-model.js";
export { estimateVramWith } from "./vram-model.js";

/**
 * Peak training VRAM per GPU (GB, 1e9 bytes) with the additive model of perf-reliability.md §2.2,
 * for the settings the plan resolves (gradient checkpointing, compile, CUDA graph, fp8 base: see
 * train-settings.ts) unless `settings` are given.
 */
export function estimateVram(contract: Contract, model: BaseModelRecord, resolution: number, settings?: VramSettings): VramEstimate {
  return estimateVramWith(contract, model, resolution, settings ?? resolveTrainSettings(contract, { resolution }));
}
