import type { Contract } from "../contract/schema.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { ATTENTION_MLP_AS_ALL_LINEAR, TARGET_SPEEDS } from "../knowledge/target-speed.js";
import type { TargetPreset } from "../knowledge/lora-targets.js";
import { LORA_TARGETS } from "../knowledge/lora-targets.js";
import type { TrainSettings } from "./train-settings.js";

/** The preset a trainer trains for a contract (network.modules: "custom"); fal has no choice. */
export function effectivePreset(c: Contract): TargetPreset | "custom" | undefined {
  if (c.trainer.name === "fal") return undefined;
  if (c.network.modules) return "custom";
  return c.network.targets ?? (c.trainer.name === "diffusers" ? "attention" : "all-linear");
}

/** The preset the anchor row was measured with: the built-in rows on attention, Kohya's and ai-toolkit's on their all-linear default. */
const measuredWith = (c: Contract): TargetPreset => (c.trainer.name === "diffusers" ? "attention" : "all-linear");

/** all-linear / attention s/step for this model and levers (its family's rows where measured; FLUX.1's for the other transformers). */
function allLinearRatio(model: BaseModelRecord, fast: boolean): { ratio: number; source: string; derived: boolean } {
  const levers = fast ? "fast" : "eager";
  const row = TARGET_SPEEDS.find((r) => r.family === model.family && r.levers === levers) ?? TARGET_SPEEDS.find((r) => r.family === "flux1" && r.levers === levers)!;
  return { ratio: row.allLinearSecondsPerStep / row.attentionSecondsPerStep, source: row.source, derived: model.family !== row.family };
}

/** True when the contract's LoRA stays within the attention preset (so it keeps no more than the attention rows did). */
export function attentionOnly(c: Contract, model: BaseModelRecord): boolean {
  const preset = effectivePreset(c);
  return preset === undefined || presetRatio(preset, c, model, 2) === 1;
}

function presetRatio(preset: TargetPreset | "custom", c: Contract, model: BaseModelRecord, all: number): number {
  if (preset === "attention") return 1;
  if (preset !== "custom") return all;
  // An explicit list: attention's cost when it stays within the attention preset, else all-linear's (an upper bound).
  const family = model.family === "sdxl" ? "sdxl" : "flux1";
  const attention = new Set<string>(LORA_TARGETS[family].presets.attention);
  return c.network.modules!.every((m) => attention.has(m)) ? 1 : all;
}

/**
 * A built-in contract timed from a measured all-linear row (plan/walltime.ts): what that row stands for beyond
 * all-linear itself, with its source (attention-mlp and a module list beyond attention cost at most all-linear's);
 * undefined for all-linear.
 */
export function allLinearAnchorNote(c: Contract): { config: string; source?: string } | undefined {
  const preset = effectivePreset(c);
  if (preset === "attention-mlp") return { config: "(attention-mlp taken as all-linear: an upper bound)", source: ATTENTION_MLP_AS_ALL_LINEAR.source };
  if (preset === "custom") return { config: "(a module list beyond the attention preset taken as all-linear: an upper bound)" };
  return undefined;
}

/**
 * The factor on the anchor's s/step for the contract's target preset, with the words the plan
 * shows. 1 when the preset is the one the anchor row was measured with.
 */
export function targetSpeedFactor(model: BaseModelRecord, c: Contract, settings: TrainSettings): { factor: number; config?: string; source?: string } {
  const preset = effectivePreset(c);
  if (!preset) return { factor: 1 };
  const fast = c.trainer.name === "diffusers" && (settings.compile || settings.cudaGraphs);
  const { ratio, source, derived } = allLinearRatio(model, fast);
  const factor = presetRatio(preset, c, model, ratio) / presetRatio(measuredWith(c), c, model, ratio);
  if (Math.abs(factor - 1) < 1e-9) return { factor: 1 };
  const why = `${preset} vs the row's ${measuredWith(c)} (${fast ? "fast" : "eager"} all-linear/attention ${ratio.toFixed(2)}${derived ? ", FLUX.1's" : ""}${preset === "attention-mlp" ? ", attention-mlp taken as all-linear" : ""})`;
  return { factor, config: `x ${factor.toFixed(2)} for ${why}`, source: preset === "attention-mlp" ? `${source}; ${ATTENTION_MLP_AS_ALL_LINEAR.source}` : source };
}
