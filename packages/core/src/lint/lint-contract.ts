import type { Contract } from "../contract/schema.js";
import { getBaseModel } from "../knowledge/base-models.js";
import { planFrom } from "../plan/plan-inputs.js";
import { findingApplies } from "../compile/trainer-receives.js";
import { costAndTime, vram } from "./budget-rules.js";
import { datasetImages, datasetSize } from "./dataset-rules.js";
import type { Finding } from "./finding.js";
import { learningRate, passesPerImage, recipeTarget, saveEvery, stepsRules, warmupRule } from "./hyperparameter-rules.js";
import type { LintContext, LintOptions, Rule } from "./lint-rule.js";
import { lintPromises } from "./promise-rules.js";
import { lintNetwork } from "./network-rules.js";
import { lintRegularisers } from "./regulariser-rules.js";
import { lintNetworkKind } from "./network-kind-rules.js";
import { lintBuckets } from "./bucket-rules.js";
import { lintCrop } from "./crop-rules.js";
import { lintSamples } from "./sample-rules.js";
import { knownDefects, stacking } from "./stack-rules.js";
import { hardwareTrainer, regImages, trainerBaseFiles, trainerSettings, trainerSupport } from "./trainer-support-rules.js";
import { lintTrainerTraps } from "./trainer-rules.js";
import { captionStyle, triggerWord } from "./trigger-caption-rules.js";

export type { LintOptions } from "./lint-rule.js";

/**
 * Every lint rule, in output order (findings are then sorted by severity, stably). A new rule family
 * goes in its own file under lint/ exporting `Rule`s (`(ctx: LintContext) => Finding[]`, lint-rule.ts)
 * and is added here, as trainer-rules.ts and promise-rules.ts are.
 */
const RULE_FUNCTIONS: readonly Rule[] = [
  trainerSupport,
  trainerBaseFiles,
  trainerSettings,
  hardwareTrainer,
  regImages,
  learningRate,
  triggerWord,
  captionStyle,
  stacking,
  recipeTarget,
  datasetSize,
  stepsRules,
  passesPerImage,
  warmupRule,
  vram,
  costAndTime,
  saveEvery,
  datasetImages,
  knownDefects,
  // Trainer traps (helper TRAINERS): schedule per trainer, fields a trainer never receives, fal endpoints.
  ({ c, plan }) => lintTrainerTraps(c, plan.steps),
  // network.targets / network.modules per trainer (lint/network-rules.ts).
  ({ c }) => lintNetwork(c),
  ({ c }) => lintRegularisers(c),
  ({ c }) => lintNetworkKind(c),
  // Aspect buckets (lint/bucket-rules.ts).
  ({ c, plan }) => lintBuckets(c, plan.resolution),
  // dataset.crop: attention needs prep's folder (lint/crop-rules.ts).
  ({ c, opts }) => lintCrop(c, opts.trainingData),
  // Sample images during training (samples.*): fal renders none.
  ({ c }) => lintSamples(c),
  // Promises the contract makes (validation rubric, trigger, sample prompts) that its settings cannot keep.
  ({ c, model, plan, opts }) => lintPromises({ c, model, plan, words: opts.words }),
];

/** Lints a contract (and optionally the dataset scan) against the knowledge base. Pure. */
export function lintContract(contract: Contract, options: LintOptions = {}): Finding[] {
  const model = getBaseModel(contract.base.model);
  if (!model) throw new Error(`unknown base model ${contract.base.model}`); // the loader rejects these first
  // The plan as every other caller makes it from the same sources (plan/plan-inputs.ts): lint judges that plan.
  const plan = planFrom(contract, options);
  const ctx: LintContext = { c: contract, model, plan, opts: options };
  const order = { error: 0, warning: 1, info: 2 } as const;
  // A rule judging a setting the trainer is not handed says nothing for it (compile/trainer-receives.ts RULE_SETTINGS).
  const findings = RULE_FUNCTIONS.flatMap((rule) => rule(ctx))
    .filter((f) => findingApplies(f.rule, plan.receives))
    .map((f) => accepted(f, contract));
  return findings.sort((a, b) => order[a.severity] - order[b.severity]);
}

/** A finding the contract accepts (lint.accept) becomes a note carrying the contract's reason. */
function accepted(f: Finding, c: Contract): Finding {
  const ok = c.lint.accept.find((a) => a.rule === f.rule);
  return ok ? { ...f, severity: "info", message: `accepted (lint.accept: ${ok.why}): ${f.message}` } : f;
}
