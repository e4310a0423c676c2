import type { Contract } from "../contract/schema.js";
import type { Finding } from "./finding.js";

/**
 * fal's hosted trainers render no images while training (no sampling input in any endpoint's
 * schema: trainers.md §7 feature table, "Sample images during training"), so each `samples`
 * field a contract sets is a trainer-ignores-field finding naming it. Pure.
 */
const FAL_SOURCE = "shared/reference/trainers.md §7 (feature table: sample images during training, fal: N, not in schemas)";

export function lintSamples(c: Contract): Finding[] {
  if (c.trainer.name !== "fal") return [];
  const s = c.samples;
  const set = [
    ["samples.every", s.every > 0],
    ["samples.prompts", s.prompts !== undefined],
    ["samples.seeds", s.seeds !== undefined],
    ["samples.steps", s.steps !== undefined],
    ["samples.guidance", s.guidance !== undefined],
    ["samples.first", s.first !== undefined],
  ] as const;
  return set
    .filter(([, on]) => on)
    .map(([field]) => ({
      rule: "trainer-ignores-field",
      severity: "warning" as const,
      message: `${field} is not used by fal: its trainers render no sample images while training; run \`loraspec validate\` on the result instead.`,
      fix: `Remove ${field}, or train with the built-in trainer, kohya or ai-toolkit to watch samples.`,
      source: FAL_SOURCE,
      field,
    }));
}
