import type { Contract } from "../contract/schema.js";
import { baseQuantizeOf } from "../contract/base-quantize.js";
import { LoraspecError } from "../errors.js";
import { BUILTIN_TRAINER } from "../knowledge/builtin-trainer.js";
import { AI_TOOLKIT_OPTIMIZERS } from "./ai-toolkit/ai-toolkit-profiles.js";
import { KOHYA_OPTIMIZERS, KOHYA_QUANTIZE } from "./kohya/kohya-profiles.js";

/** Why a local trainer cannot take one contract setting: the compiler throws it (E_TRAINER_UNSUPPORTED), check reports it first. */
export interface SettingRefusal {
  field: "hyperparameters.optimizer" | "base.quantize";
  message: string;
  fix: string;
  source: string;
}

const BUILTIN_SOURCE = "knowledge/builtin-trainer.ts BUILTIN_TRAINER (the worker's train/model.py OPTIMIZERS, quantize)";

/**
 * The optimizer and base precision each local trainer takes, one home for its compiler and for check
 * (lint/trainer-support-rules.ts trainerSettings). fal's endpoints take neither (lint trainer-ignores-field).
 */
export function settingRefusals(c: Contract): SettingRefusal[] {
  const out: SettingRefusal[] = [];
  const { optimizer } = c.hyperparameters;
  const quantize = baseQuantizeOf(c);
  if (c.trainer.name === "diffusers") {
    if (!(BUILTIN_TRAINER.optimizers as readonly string[]).includes(optimizer)) {
      out.push({ field: "hyperparameters.optimizer", message: `The built-in trainer has no ${optimizer} optimizer.`, fix: `Use one of: ${BUILTIN_TRAINER.optimizers.join(", ")}.`, source: BUILTIN_SOURCE });
    }
    if (!(BUILTIN_TRAINER.quantize as readonly string[]).includes(quantize)) {
      out.push({ field: "base.quantize", message: `The built-in trainer holds the base in bf16 or fp8, not ${quantize}.`, fix: "Set base.quantize: fp8 (or none), or train with ai-toolkit for int8/nf4.", source: BUILTIN_SOURCE });
    }
  } else if (c.trainer.name === "kohya") {
    if (!KOHYA_OPTIMIZERS.map[optimizer]) {
      out.push({ field: "hyperparameters.optimizer", message: `kohya has no optimizer mapped for "${optimizer}".`, fix: `Use one of: ${Object.keys(KOHYA_OPTIMIZERS.map).join(", ")}.`, source: KOHYA_OPTIMIZERS.source });
    }
    if (!KOHYA_QUANTIZE.values.includes(quantize)) {
      out.push({ field: "base.quantize", message: `kohya sd-scripts cannot hold the base in ${quantize}; it supports fp8 (--fp8_base).`, fix: "Use base.quantize: fp8 or none with kohya, or trainer.name: ai-toolkit for 4/8-bit bases.", source: KOHYA_QUANTIZE.source });
    }
  } else if (c.trainer.name === "ai-toolkit" && !AI_TOOLKIT_OPTIMIZERS.map[optimizer]) {
    out.push({ field: "hyperparameters.optimizer", message: `ai-toolkit has no optimizer mapped for "${optimizer}".`, fix: `Use one of: ${Object.keys(AI_TOOLKIT_OPTIMIZERS.map).join(", ")}.`, source: AI_TOOLKIT_OPTIMIZERS.source });
  }
  return out;
}

/** The compilers' side of settingRefusals: the first refusal as E_TRAINER_UNSUPPORTED naming its field. */
export function assertSettingsAccepted(c: Contract): void {
  const [r] = settingRefusals(c);
  if (r) throw new LoraspecError("E_TRAINER_UNSUPPORTED", r.message, { field: r.field, hint: r.fix });
}
