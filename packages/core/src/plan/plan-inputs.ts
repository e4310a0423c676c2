import type { Contract } from "../contract/schema.js";
import type { DatasetSummary } from "../contract/dataset-summary.js";
import { planRun, type LivePrice, type Plan, type PlanOptions } from "./plan-run.js";

/**
 * What a plan is made of besides the contract: the dataset scan (the images that train), the regularisation
 * folder's scan (dataset.reg_path, counted as the trainer reads it) and fal's live prices. Every caller of the plan
 * outside core (check, the OOM fallback's re-plan, the page, the server) hands these, never PlanOptions built by
 * hand: a caller that dropped the reg scan planned its epochs and steps with a guessed count (plan/epoch.ts).
 * lintContract takes the same sources (LintOptions extends PlanSources) and plans through planFrom too.
 */
export interface PlanSources {
  dataset?: DatasetSummary;
  /** The regularisation images the trainer reads (check's scan of dataset.reg_path); absent: not scanned. */
  regDataset?: DatasetSummary;
  livePrices?: readonly LivePrice[];
}

/** The one input builder: PlanSources -> planRun's dataset and options. */
export function planInputs(sources: PlanSources): { dataset?: DatasetSummary; options: PlanOptions } {
  return {
    dataset: sources.dataset,
    options: {
      ...(sources.livePrices ? { livePrices: sources.livePrices } : {}),
      ...(sources.regDataset ? { regImages: sources.regDataset.images.length } : {}),
    },
  };
}

/** The plan of a contract from its sources (planInputs, then planRun). Pure. */
export function planFrom(contract: Contract, sources: PlanSources = {}): Plan {
  const { dataset, options } = planInputs(sources);
  return planRun(contract, dataset, options);
}
