import { LR_ERROR_FACTOR } from "../knowledge/lint-severity.js";
import { getLrRange, LR_RANGES, getDatasetSize, getSteps, STEPS_PASSES_TOLERANCE } from "../knowledge/recipes.js";
import type { Finding } from "./finding.js";
import { type Rule, fmt, inRange, rangeText, datasetCount } from "./lint-rule.js";

/**
 * Hyperparameters against the recipe tables: learning rate, steps, the target's recipe, save_every.
 * Registered in lint-contract.ts (RULE_FUNCTIONS).
 */
export const learningRate: Rule = ({ c, model, plan }) => {
  const lr = plan.learningRate;
  const range = getLrRange(model.family, c.target);
  if (!range) return [];
  if (model.family !== "sdxl" && lr > range.range.max) {
    const sdxl = LR_RANGES.filter((r) => r.families.includes("sdxl"));
    const fromSdxl = sdxl.some((r) => inRange(lr, r.range));
    return [
      {
        rule: "lr-sdxl-on-flux",
        severity: "error",
        message: `learning_rate ${fmt(lr)} is above ${fmt(range.range.max)}, the top of the ${model.label} range${fromSdxl ? " (it is an SDXL value)" : ""}; Flux-class models overcook at SDXL rates.`,
        fix: `Set hyperparameters.learning_rate within ${rangeText(range.range, fmt)} (e.g. ${fmt(range.recommended)}).`,
        source: range.source,
        field: "hyperparameters.learning_rate",
      },
    ];
  }
  // An LR that is another target's recipe is reported once, by recipe-target-mismatch.
  const otherTarget = c.target === "style" ? "character" : c.target === "character" ? "style" : undefined;
  const other = otherTarget ? getLrRange(model.family, otherTarget) : undefined;
  if (other && other !== range && inRange(lr, other.range)) return [];
  if (!inRange(lr, range.range)) {
    const factor = lr > range.range.max ? lr / range.range.max : range.range.min / lr;
    const far = factor >= LR_ERROR_FACTOR.factor;
    return [
      {
        rule: "lr-out-of-range",
        severity: far ? "error" : "warning",
        message: `learning_rate ${fmt(lr)} is ${factor.toFixed(1)}x ${lr > range.range.max ? "above the top" : "below the bottom"} of ${rangeText(range.range, fmt)} for a ${c.target} LoRA on ${model.label}${far ? ` (${LR_ERROR_FACTOR.factor}x or more out is an error)` : ""}.`,
        fix: `Use a value in ${rangeText(range.range, fmt)} (e.g. ${fmt(range.recommended)}).`,
        source: far ? `${range.source}; ${LR_ERROR_FACTOR.source}` : range.source,
        field: "hyperparameters.learning_rate",
      },
    ];
  }
  return [];
};

export const recipeTarget: Rule = (ctx) => {
  const { c, model, plan } = ctx;
  const own = c.target;
  const other = own === "style" ? "character" : own === "character" ? "style" : undefined;
  if (!other) return [];
  const reasons: string[] = [];
  let source = "";
  const ownLr = getLrRange(model.family, own);
  const otherLr = getLrRange(model.family, other);
  if (ownLr && otherLr && ownLr !== otherLr && inRange(plan.learningRate, otherLr.range) && !inRange(plan.learningRate, ownLr.range)) {
    reasons.push(`learning_rate ${fmt(plan.learningRate)} is the ${other} range (${rangeText(otherLr.range, fmt)}), not the ${own} range (${rangeText(ownLr.range, fmt)})`);
    source = `${ownLr.source}; ${otherLr.source}`;
  }
  const count = datasetCount(ctx);
  const ownSize = getDatasetSize(own, model.family);
  const otherSize = getDatasetSize(other, model.family);
  const ownSteps = getSteps(own);
  const otherSteps = getSteps(other);
  const sizeOther = count !== undefined && inRange(count, otherSize.images) && !inRange(count, ownSize.images);
  const stepsOther = inRange(plan.steps, otherSteps.steps) && !inRange(plan.steps, ownSteps.steps);
  if (sizeOther && stepsOther) {
    reasons.push(
      `${count} images and ${plan.steps} steps are a ${other} recipe (${rangeText(otherSize.images)} images, ${rangeText(otherSteps.steps)} steps), not ${own} (${rangeText(ownSize.images)} images, ${rangeText(ownSteps.steps)} steps)`,
    );
    source = [source, ownSize.source, otherSize.source, ownSteps.source].filter(Boolean).join("; ");
  }
  if (reasons.length === 0) return [];
  return [
    {
      rule: "recipe-target-mismatch",
      severity: "error",
      message: `target is '${own}' but ${reasons.join("; and ")}.`,
      fix: `Use the ${own} recipe: ${ownLr ? `learning_rate in ${rangeText(ownLr.range, fmt)}, ` : ""}${ownSize.advice}, ${rangeText(ownSteps.steps)} steps.`,
      source,
      field: ownLr && reasons[0]!.startsWith("learning_rate") ? "hyperparameters.learning_rate" : "target",
    },
  ];
};

export const stepsRules: Rule = ({ c, plan }) => {
  const hp = c.hyperparameters;
  const out: Finding[] = [];
  const rec = getSteps(c.target);
  if (hp.steps && hp.passes_per_image) {
    const implied = Math.ceil((hp.passes_per_image * plan.images.count) / plan.effectiveBatch);
    if (Math.abs(implied - hp.steps) / hp.steps > STEPS_PASSES_TOLERANCE.fraction) {
      out.push({
        rule: "steps-passes-mismatch",
        severity: "warning",
        message: `steps ${hp.steps} but passes_per_image ${hp.passes_per_image} x ${plan.images.count} images / batch ${plan.effectiveBatch} = ${implied} steps.`,
        fix: "Give one of steps or passes_per_image, or make them agree.",
        source: `${STEPS_PASSES_TOLERANCE.source}; ${rec.source}`,
        field: "hyperparameters.steps",
      });
    }
  }
  if (!inRange(plan.steps, rec.steps)) {
    out.push({
      rule: "steps-out-of-range",
      severity: "warning",
      message: `${plan.steps} steps; a ${c.target} LoRA usually needs ${rangeText(rec.steps)} (about ${rec.passesPerImage} passes per image).`,
      fix: `Set hyperparameters.steps within ${rangeText(rec.steps)}.`,
      source: rec.source,
      field: "hyperparameters.steps",
    });
  }
  return out;
};

export const saveEvery: Rule = ({ c }) =>
  // fal's endpoints save once, at the end (trainer-ignores-field says so when save_every is set).
  c.hyperparameters.save_every || c.trainer.name === "fal"
    ? []
    : [
        {
          rule: "no-save-every",
          severity: "warning",
          message: "No hyperparameters.save_every: a crash or an overcooked run leaves no earlier LoRA to fall back on.",
          fix: "Set hyperparameters.save_every (e.g. 250).",
          source: "shared/reference/perf-reliability.md §4c (resume and failure handling in the trainers)",
          field: "hyperparameters.save_every",
        },
      ];
