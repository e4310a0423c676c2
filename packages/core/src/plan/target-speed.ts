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

/** all-linear / attention s/step for this model and levers (SDXL's own rows; FLUX.1's for the transformers). */
function allLinearRatio(model: BaseModelRecord, fast: boolean): { ratio: number; source: string; derived: boolean } {
  const family = model.family === "sdxl" ? "sdxl" : "flux1";
  const row = TARGET_SPEEDS.find((r) => r.family === family && r.levers === (fast ? "fast" : "eager"))!;
  return { ratio: row.allLinearSecondsPerStep / row.attentionSecondsPerStep, source: row.source, derived: model.family !== family };
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

/** FLUX.1 [dev], 1024², batch 1, no checkpointing, compile + fp8 GEMMs: the attention row's peak (TRAIN_SPEEDS). */
const FLUX1_ATTENTION_PEAK_GIB = 44.64;
const GIB = 1024 ** 3 / 1e9;

/**
 * Extra activation memory of a built-in run that trains the MLPs too (a LoRA keeps each adapted
 * module's input for its backward; the MLP down-projections' inputs are 4x wide): FLUX.1's measured
 * all-linear peak over its attention row, scaled by tokens x batch and hidden x blocks to other
 * FLUX-class models. Without checkpointing only (with it, the blocks' insides are recomputed);
 * SDXL's all-linear peak is not measured, so it gets none (said in the assumptions).
 */
export function targetActivationExtraGb(model: BaseModelRecord, c: Contract, settings: { gradientCheckpointing: boolean }, tokens: number): { gb: number; assumption: string } | undefined {
  if (c.trainer.name !== "diffusers") return undefined;
  const preset = effectivePreset(c);
  if (preset === undefined || preset === "attention" || (preset === "custom" && presetRatio(preset, c, model, 2) === 1)) return undefined;
  if (model.family === "sdxl") return { gb: 0, assumption: `LoRA on ${preset}: SDXL's extra activation memory is not measured (none added)` };
  if (settings.gradientCheckpointing) return { gb: 0, assumption: `LoRA on ${preset} with gradient checkpointing: no extra activations counted (recomputed)` };
  const row = TARGET_SPEEDS.find((r) => r.family === "flux1" && r.allLinearPeakGib !== undefined)!;
  const flux1Tokens = 4608;
  const scale = (tokens / flux1Tokens) * ((model.hidden * model.blocks) / (3072 * 57));
  const gb = (row.allLinearPeakGib! - FLUX1_ATTENTION_PEAK_GIB) * GIB * scale;
  return { gb, assumption: `LoRA on ${preset}: +${gb.toFixed(1)} GB activations (FLUX.1 all-linear peak ${row.allLinearPeakGib} GiB vs attention ${FLUX1_ATTENTION_PEAK_GIB} GiB on an H200, ${row.source}, scaled x ${scale.toFixed(2)})` };
}
