import { LoraspecError } from "@loraspec/core/errors.js";
import { ACCEPT_UNPRICED_FLAG } from "@loraspec/core/lint/accept-unpriced.js";

/**
 * A billed job (fal) whose contract sets limits.max_cost_usd but no price is known for it (no price record, no
 * live price in steps): refused rather than submitted unchecked. `train --accept-unpriced` is the explicit override.
 * One home for train's refusal (prepare-training), the page's (server/runs-service: `via: "page"`, which has no
 * flags, names the command that has it) and the fal runner's own check before it submits; check says the same as
 * the error cost-limit-unchecked (lint/budget-rules.ts).
 */
export function costUncheckedError(unchecked: { maxUsd: number; basis: string; endpoint?: string }, file?: string, via: "cli" | "page" = "cli"): LoraspecError {
  const override = via === "page" ? `start it from a terminal with \`loraspec train ${ACCEPT_UNPRICED_FLAG}\` (the page never submits past a ceiling it cannot check)` : `pass ${ACCEPT_UNPRICED_FLAG} to submit without the ceiling`;
  return new LoraspecError(
    "E_COST_UNKNOWN",
    `limits.max_cost_usd is $${unchecked.maxUsd.toFixed(2)} but no price is known for ${unchecked.endpoint ?? "this fal job"} (${unchecked.basis}): not submitted, since the ceiling cannot be checked`,
    {
      file,
      field: "limits.max_cost_usd",
      hint: `set FAL_KEY so fal's pricing API gives the endpoint's price (its unit must be steps; loraspec's own records are knowledge/prices.ts), remove limits.max_cost_usd, or ${override}`,
    },
  );
}
