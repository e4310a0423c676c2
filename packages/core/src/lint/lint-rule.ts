import type { Contract } from "../contract/schema.js";
import type { DatasetSummary } from "../contract/dataset-summary.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import type { Range } from "../knowledge/types.js";
import type { Plan } from "../plan/plan-run.js";
import type { PlanSources } from "../plan/plan-inputs.js";
import type { WordLookup } from "./clip-pretokenize.js";
import type { TrainingData } from "./crop-rules.js";
import type { Finding } from "./finding.js";

/**
 * What every lint rule sees, and the shape of one: a pure function from the contract (with its base
 * model record, its plan and the options) to findings. Rules live in files by family under lint/
 * and are registered, in output order, in lint-contract.ts (RULE_FUNCTIONS).
 */

/** The plan's sources (plan/plan-inputs.ts: dataset, reg folder, live prices), the same a caller hands the plan, and what lint alone reads. */
export interface LintOptions extends PlanSources {
  /** What the quick dataset scan found; dataset rules are skipped without it. */
  dataset?: DatasetSummary;
  /** English word list (engine: loadEnglishWords); the trigger word rule is skipped without it. */
  words?: WordLookup;
  /** CLIP's real tokenizer (engine: loadClipTokenizer); without it the pre-tokenization is shown. */
  tokenizer?: (text: string) => string[];
  /** What the run will train on (engine: the prepared folder and its crop); the crop rule is skipped without it. */
  trainingData?: TrainingData;
}

export interface LintContext {
  c: Contract;
  model: BaseModelRecord;
  plan: Plan;
  opts: LintOptions;
}

export type Rule = (ctx: LintContext) => Finding[];

/** 0.0001 -> "1e-4", 0.00015 -> "1.5e-4". */
export const fmt = (x: number) => (x >= 0.01 || x === 0 ? String(x) : x.toExponential().replace(/\.?0+e/, "e"));
export const inRange = (x: number, r: Range) => x >= r.min && x <= r.max;
export const rangeText = (r: Range, f: (x: number) => string = String) => `${f(r.min)} to ${f(r.max)}`;

/** Images in the scanned folder, else the contract's dataset.expected_images. */
export function datasetCount(ctx: LintContext): number | undefined {
  return ctx.opts.dataset ? ctx.opts.dataset.images.length : ctx.c.dataset.expected_images;
}
