/**
 * The run state machine: the states a run in the run store (run-store.ts) can be in, and
 * which moves between them are allowed.
 */
export const RUN_STATES = ["queued", "starting", "running", "succeeded", "failed", "cancelled", "interrupted"] as const;
export type RunState = (typeof RUN_STATES)[number];

/** Where each state may go. Terminal-but-resumable states may go back to `starting`. */
const TRANSITIONS: Record<RunState, readonly RunState[]> = {
  queued: ["starting", "cancelled", "failed"],
  starting: ["running", "succeeded", "failed", "cancelled", "interrupted"],
  running: ["succeeded", "failed", "cancelled", "interrupted"],
  // -> succeeded: reconciliation found the trainer's done line after the run was marked interrupted.
  interrupted: ["starting", "succeeded", "failed", "cancelled"],
  failed: ["starting"],
  cancelled: ["starting"],
  succeeded: [],
};

export const ACTIVE_STATES: readonly RunState[] = ["starting", "running"];
export const RESUMABLE_STATES: readonly RunState[] = ["interrupted", "failed", "cancelled"];

export function canTransition(from: RunState, to: RunState): boolean {
  return TRANSITIONS[from].includes(to);
}
