import { LoraspecError } from "@loraspec/core/errors.js";

/**
 * A billed job (fal) whose contract sets limits.max_cost_usd but no price is known for it (no price record, no
 * live price in steps): refused rather than submitted unchecked. `train --yes` is the explicit override. One home
 * for train's refusal (prepare-training), the page's (server/runs-service) and the fal runner's own check before
 * it submits; check says the same as the error cost-limit-unchecked (lint/budget-rules.ts).
 */
export function costUncheckedError(unchecked: { maxUsd: number; basis: string; endpoint?: string }, file?: string): LoraspecError {
  return new LoraspecError(
    "E_COST_UNKNOWN",
    `limits.max_cost_usd is $${unchecked.maxUsd.toFixed(2)} but no price is known for ${unchecked.endpoint ?? "this fal job"} (${unchecked.basis}): not submitted, since the ceiling cannot be checked`,
    {
      file,
      field: "limits.max_cost_usd",
      hint: "remove limits.max_cost_usd, or pass --yes to submit without the ceiling (a price comes from fal's pricing API with FAL_KEY set, when its unit is steps, or from loraspec's price records, knowledge/prices.ts)",
    },
  );
}
