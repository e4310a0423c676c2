import { LR_ERROR_FACTOR } from "../knowledge/lint-severity.js";
import { getLrRange, LR_RANGES, getDatasetSize, getPassesPerImage, getSteps, PASSES_PER_IMAGE_TOLERANCE, STEPS_PASSES_TOLERANCE } from "../knowledge/recipes.js";
import { effectiveBatchOf, effectiveBatchText } from "../plan/effective-batch.js";
import { datasetSteps, regShareText, stepsForPasses } from "../plan/epoch.js";
import type { Plan } from "../plan/plan-run.js";
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
  // The LR is a reason only where the trainer is handed it (compile/trainer-receives.ts).
  if (plan.receives.settings.learningRate && ownLr && otherLr && ownLr !== otherLr && inRange(plan.learningRate, otherLr.range) && !inRange(plan.learningRate, ownLr.range)) {
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

/** The plan's figures the passes and steps rules count with: images, effective batch and the training images' share (plan/epoch.ts). */
const perImage = (plan: Plan) => ({ images: plan.images.count, batchImages: plan.effectiveBatch, trainShare: plan.trainShare });
/** ", half of the batches on regularisation images" where reg images take part of each batch. */
const regText = (plan: Plan) => (plan.trainShare < 1 ? `, ${regShareText(plan.trainShare)}` : "");

export const stepsRules: Rule = ({ c, plan }) => {
  const hp = c.hyperparameters;
  const out: Finding[] = [];
  const rec = getSteps(c.target);
  if (hp.steps && hp.passes_per_image) {
    // The plan's own steps for these passes (plan/epoch.ts stepsForPasses): the reg images' share of the batches counted.
    const implied = stepsForPasses(hp.passes_per_image, perImage(plan));
    if (Math.abs(implied - hp.steps) / hp.steps > STEPS_PASSES_TOLERANCE.fraction) {
      out.push({
        rule: "steps-passes-mismatch",
        severity: "warning",
        message: `steps ${hp.steps} but passes_per_image ${hp.passes_per_image} x ${plan.images.count} images / ${effectiveBatchText(effectiveBatchOf(c))}${regText(plan)} = ${implied} steps.`,
        fix: "Give one of steps or passes_per_image, or make them agree.",
        source: `${STEPS_PASSES_TOLERANCE.source}; ${rec.source}`,
        field: "hyperparameters.steps",
      });
    }
  }
  // The guide's steps are at batch 1: with a larger effective batch (batch x accumulation x GPUs) the length of
  // the run is judged in passes per image (passes-per-image-out-of-range), so its fix (fewer steps) holds.
  // A trainer that picks its own batch (fal) is judged on its steps alone: passes per image are unknown there.
  // The range bounds the steps on the dataset: with reg images in each batch the run takes that many more (plan/epoch.ts datasetSteps).
  const onDataset = datasetSteps(plan.steps, plan.trainShare);
  if ((plan.effectiveBatch === 1 || !plan.receives.settings.batch) && !inRange(onDataset, rec.steps)) {
    const range = plan.trainShare < 1 ? { min: Math.ceil(rec.steps.min / plan.trainShare), max: Math.floor(rec.steps.max / plan.trainShare) } : rec.steps;
    out.push({
      rule: "steps-out-of-range",
      severity: "warning",
      message: `${plan.steps} steps${plan.trainShare < 1 ? ` (${onDataset} on the dataset${regText(plan)})` : ""}; a ${c.target} LoRA usually needs ${rangeText(rec.steps)} (about ${rec.passesPerImage} passes per image)${plan.trainShare < 1 ? " on the dataset" : ""}.`,
      fix: `Set hyperparameters.steps within ${rangeText(range)}.`,
      source: rec.source,
      field: "hyperparameters.steps",
    });
  }
  return out;
};

export const saveEvery: Rule = ({ c }) =>
  // A trainer that saves once, at the end (fal), is not handed checkpoints: lint-contract.ts drops this there
  // (compile/trainer-receives.ts RULE_SETTINGS); trainer-ignores-field says so when save_every is set.
  c.hyperparameters.save_every
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

/**
 * How many times each training image trains: steps x effective batch (batch x accumulation x GPUs, plan/effective-batch.ts)
 * x the training images' share of the batches (reg images take the rest, plan/epoch.ts regMix) / images: the plan's
 * passesPerImage, one function (plan/epoch.ts passesOf), against the recipe's range (knowledge/recipes.ts getPassesPerImage).
 * The steps range alone is the guide's at batch 1: batch 32 on 20 images at 2,000 steps is 3,200 passes per image
 * with the steps in range. At effective batch 1 with the steps out of range, steps-out-of-range already says it.
 */
export const passesPerImage: Rule = ({ c, model, plan }) => {
  const rec = getPassesPerImage(c.target, model.family);
  const passes = plan.passesPerImage;
  const k = PASSES_PER_IMAGE_TOLERANCE.factor;
  const high = passes >= rec.range.max * k;
  const low = passes <= rec.range.min / k;
  if (!high && !low) return [];
  const stepsRec = getSteps(c.target);
  if (plan.effectiveBatch === 1 && !inRange(datasetSteps(plan.steps, plan.trainShare), stepsRec.steps)) return [];
  const batch = effectiveBatchOf(c);
  const target = Math.max(1, Math.round((rec.range.min + rec.range.max) / 2));
  const steps = stepsForPasses(target, perImage(plan));
  return [
    {
      rule: "passes-per-image-out-of-range",
      severity: "warning",
      message: `each image trains ${fmt(passes)} times (${plan.steps} steps x ${effectiveBatchText(batch)}${regText(plan)} / ${plan.images.count} images); a ${c.target} LoRA on ${model.label} takes about ${rangeText(rec.range)}${high ? ": it will overtrain (overcooked, the dataset memorised)" : ": it will undertrain"}.`,
      fix: `Set hyperparameters.steps to about ${steps} at this batch (${target} passes per image)${batch.images > 1 ? `, or lower ${[batch.batch > 1 ? "batch_size" : "", batch.accumulation > 1 ? "gradient_accumulation" : "", batch.gpus > 1 ? "hardware.gpus" : ""].filter(Boolean).join(" / ")}` : ""}, or give hyperparameters.passes_per_image instead of steps.`,
      source: `${rec.source}; ${PASSES_PER_IMAGE_TOLERANCE.source}`,
      field: c.hyperparameters.steps ? "hyperparameters.steps" : "hyperparameters.passes_per_image",
    },
  ];
};

/** A warm-up as long as the run: the learning rate never reaches hyperparameters.learning_rate. */
export const warmupRule: Rule = ({ c, plan }) => {
  const warmup = c.hyperparameters.warmup_steps;
  if (warmup < plan.steps) return [];
  return [
    {
      rule: "warmup-over-steps",
      severity: "error",
      message: `warmup_steps ${warmup} is not below the run's ${plan.steps} steps: the learning rate is still rising when training ends and never reaches ${fmt(plan.learningRate)}.`,
      fix: `Set hyperparameters.warmup_steps well below ${plan.steps} (e.g. ${Math.max(0, Math.round(plan.steps * 0.05))}, 5% of the run), or 0.`,
      source: "ours: a linear warm-up reaches the set learning rate only at warmup_steps (diffusers get_scheduler, sd-scripts, ai-toolkit)",
      field: "hyperparameters.warmup_steps",
    },
  ];
};
