import type { Contract } from "../contract/schema.js";
import { isLoraspecError } from "../errors.js";
import { BUCKET_DEFAULTS } from "../knowledge/buckets.js";
import { resolveBuckets } from "../plan/buckets.js";
import type { Finding, RuleInfo } from "./finding.js";

/** The aspect-bucket rules, listed in RULES (finding.ts). */
export const BUCKET_RULES: readonly RuleInfo[] = [
  { id: "buckets-invalid", severity: "error", title: "dataset.buckets that no bucket set satisfies (sides off the step, resolution outside min/max)" },
];

/** A bucket set the compilers would refuse, said by check before any run (pure; `resolution` is the plan's). */
export function lintBuckets(c: Contract, resolution: number): Finding[] {
  if (c.dataset.aspect !== "buckets") return [];
  try {
    resolveBuckets(c, resolution);
    return [];
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    return [
      {
        rule: "buckets-invalid",
        severity: "error",
        message: error.message,
        fix: error.hint ?? "Fix dataset.buckets (or leave it out for Kohya's defaults: min 256, max 1024, step 64).",
        source: BUCKET_DEFAULTS.source,
        field: error.field ?? "dataset.buckets",
      },
    ];
  }
}
