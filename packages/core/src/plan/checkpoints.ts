import type { Contract } from "../contract/schema.js";

/**
 * How many step checkpoints a run saves, and so keeps: one home for the plan's count and every compiler
 * that has to say how many to keep (ai-toolkit's `max_step_saves_to_keep`; Kohya and the built-in trainer
 * keep every one they save). Every `save_every` steps (at most the run's length), at least one; fal's
 * endpoints save once, at the end (save_every is a field they never receive). Pure.
 */
export function checkpointsOf(contract: Pick<Contract, "trainer" | "hyperparameters">, steps: number, saveEvery = contract.hyperparameters.save_every): number {
  if (contract.trainer.name === "fal" || !saveEvery || steps <= 0) return 1;
  return Math.max(1, Math.floor(steps / Math.min(saveEvery, steps)));
}
