/**
 * train's override for a cost ceiling no price can check (cost-limit-unchecked, E_COST_UNKNOWN): a flag of its own,
 * not `--yes`, which a scripted run passes anyway to skip the prompt (train refuses to start off a terminal without it)
 * and which would then skip the ceiling unseen. check's fix (lint/budget-rules.ts), E_COST_UNKNOWN's hint (engine
 * run/cost-guard.ts) and train's option (cli commands/train.ts) all name it from here.
 */
export const ACCEPT_UNPRICED_FLAG = "--accept-unpriced";
