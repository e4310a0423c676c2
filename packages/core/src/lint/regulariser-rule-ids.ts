import type { RuleInfo } from "./finding.js";

/** The regulariser rules (lint/regulariser-rules.ts), listed in RULES. */
export const REGULARISER_RULES: readonly RuleInfo[] = [
  { id: "regulariser-unsupported", severity: "warning", title: "A regulariser the trainer or the base model does not take (not applied)" },
  { id: "shuffle-tags-cached-text", severity: "error", title: "Caption shuffling (or Kohya caption dropout) with cached text-encoder outputs" },
];
