import type { Sourced } from "./types.js";

/**
 * The built-in trainer's loss-spike (divergence) rule: after each step, the run stops as
 * E_TRAIN_DIVERGED when the mean loss of the last `recentSteps` steps exceeds `factor` x the mean
 * of up to `baselineSteps` steps before them, judged from the run's `firstStep`-th loss on (a
 * resumed run counts the losses its checkpoint kept). Core sends every number in the train request
 * (failure.loss_spike_*; compile/diffusers.ts) and the worker applies them (train/loop.py
 * check_spike); the contract's failure.loss_spike_factor overrides `factor`.
 */
export interface LossSpikeRule extends Sourced {
  /** The contract's default failure.loss_spike_factor. */
  factor: number;
  /** Steps averaged as "now". */
  recentSteps: number;
  /** Steps before the recent window averaged as the baseline (fewer early in the run). */
  baselineSteps: number;
  /** The first step (the number of losses the run has) at which the rule is judged; above recentSteps so a baseline exists. */
  firstStep: number;
}

export const LOSS_SPIKE_RULE: LossSpikeRule = {
  factor: 4,
  recentSteps: 20,
  baselineSteps: 200,
  firstStep: 40,
  source:
    "loraspec commit d53cfed (worker/tests/test_train.py test_loss_spike_rule*): a diffusion loss at batch 1 swings with the sampled timestep (a healthy toy SDXL run: median 0.011, 90th percentile 0.05, max 0.22; its mean sits ~2x its median), so the previous rule, the mean of the last 5 steps against the median of 20, fired at step 12 of a 20-step init-default toy run and within 14-57 steps of every simulated 2,000-step batch-1 run; the mean of 20 against the mean of up to 200 fired in none, still catches a jump to 5x within ~20 steps and to 50x within 2",
  asOf: "2026-12-04",
};
