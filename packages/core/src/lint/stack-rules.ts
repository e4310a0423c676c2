import { getDefect } from "../knowledge/defects.js";
import { STACKING } from "../knowledge/recipes.js";
import type { Rule } from "./lint-rule.js";

/**
 * validation.stack: how many LoRAs and how much combined weight, and the known kohya merge defects.
 * Registered in lint-contract.ts (RULE_FUNCTIONS).
 */
export const stacking: Rule = ({ c }) => {
  const v = c.validation;
  if (v.stack.length === 0) return [];
  const adapters = v.stack.length + 1;
  const combined = Math.round((v.self_weight + v.stack.reduce((s, e) => s + e.weight, 0)) * 1000) / 1000;
  if (adapters <= STACKING.maxAdapters && combined <= STACKING.maxCombinedWeight) return [];
  const problems = [
    adapters > STACKING.maxAdapters ? `${adapters} LoRAs stacked (practical ceiling ${STACKING.maxAdapters})` : "",
    combined > STACKING.maxCombinedWeight ? `combined weight ${combined} (keep <= ${STACKING.maxCombinedWeight})` : "",
  ].filter(Boolean);
  return [
    {
      rule: "stack-over-limit",
      severity: "error",
      message: `validation.stack: ${problems.join(" and ")}; stacked adapters at full weight fight each other and burn the image.`,
      fix: `Stack at most ${STACKING.maxAdapters} LoRAs and scale weights so self_weight + stack weights <= ${STACKING.maxCombinedWeight} (e.g. 0.5 + 0.3 + 0.2).`,
      source: STACKING.source,
      field: "validation.stack",
    },
  ];
};

export const knownDefects: Rule = ({ c, model }) => {
  if (c.trainer.name !== "kohya" || model.family !== "flux1" || c.validation.stack.length === 0) return [];
  const a = getDefect("sd-scripts#1612")!;
  const b = getDefect("sd-scripts#1888")!;
  return [
    {
      rule: "known-defect-kohya-merge",
      severity: "info",
      message: `Stacking Flux LoRAs: do not pre-merge them with kohya's flux_merge_lora.py. ${a.consequence} ${b.consequence}`,
      fix: `${a.workaround}`,
      source: `${a.source}; ${b.source}`,
      field: "validation.stack",
    },
  ];
};
