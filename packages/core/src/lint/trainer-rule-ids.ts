import type { RuleInfo } from "./finding.js";

/** The trainer-trap rules (lint/trainer-rules.ts), listed in RULES. */
export const TRAINER_RULES: readonly RuleInfo[] = [
  { id: "schedule-unsupported", severity: "error", title: "The trainer cannot run the contract's LR schedule (e.g. constant + warm-up crashes sd-scripts)" },
  { id: "trainer-ignores-field", severity: "warning", title: "A contract field the trainer never receives" },
  { id: "fal-endpoint-target", severity: "warning", title: "A fal endpoint built for another target (portrait trainer for a style or product)" },
];
