import type { Target } from "../contract/ids.js";
import type { Sourced } from "./types.js";

/**
 * A learning rate this many times beyond its range (above the top or below the bottom) is an
 * error; closer, a warning. 1.5: the SDXL style range (3e-4) starts 1.5x above the character
 * range's top (2e-4), and an LR that is another target's recipe is already an error
 * (recipe-target-mismatch), so anything as far out must be one too: severity never drops as the
 * distance grows.
 */
export const LR_ERROR_FACTOR: Sourced & { factor: number } = {
  factor: 1.5,
  source: "ours, from the guide's SDXL ranges (character 1e-4 to 2e-4, style 3e-4 to 5e-4; loraspec issue #2)",
  asOf: "2026-12-02",
};

/**
 * How bad a caption that does not open with the trigger is, by target. A character or product
 * LoRA binds its subject to the trigger, which the guide says opens every caption ("never
 * mid-sentence"); a style applies everywhere, so a stray caption costs less (ours: unsourced).
 */
export const TRIGGER_PLACEMENT_SEVERITY: Sourced & { byTarget: Readonly<Record<Target, "error" | "warning">> } = {
  byTarget: { character: "error", product: "error", style: "warning" },
  source: "loraspec issue #2 (source guide): the trigger opens each caption, never mid-sentence; style as a warning is ours",
  asOf: "2026-12-02",
};
