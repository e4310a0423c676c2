import { join } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import { atomicWrite } from "../fs/atomic-write.js";
import type { FalRunner } from "../fal/create-fal-runner.js";
import { openRunStore, type RunRecord, type RunStore } from "./run-store.js";
import { RUN_FILES } from "./run-training.js";
import { stopProcessGroup, type StopStep } from "./stop-process-group.js";
import type { StopTimeouts } from "./supervision-policy.js";

export interface StopRunResult {
  run: RunRecord;
  /** The last signal sent to the trainer's process group, if any. */
  signal?: StopStep;
  /** fal: the cancel request was sent. */
  remoteCancelled?: boolean;
}

/**
 * `loraspec stop <id>`: marks the stop as requested (so the supervising loraspec records
 * `cancelled`, not a failure), then stops the trainer's process group SIGINT -> SIGTERM -> SIGKILL,
 * or asks fal to cancel the request. A run nobody supervises any more is finalised here.
 */
export async function stopRun(params: {
  projectDir: string;
  runId: string;
  falRunner?: FalRunner;
  timeouts?: Partial<StopTimeouts>;
  /** How long to wait for the supervising loraspec to record the end before doing it here. */
  settleMs?: number;
  store?: RunStore;
  onStep?: (step: StopStep) => void;
}): Promise<StopRunResult> {
  const store = params.store ?? openRunStore({ projectDir: params.projectDir });
  try {
    store.reconcile();
    const run = store.get(params.runId);
    const remote = run.trainer === "fal" && run.remoteRequestId && run.remoteEndpoint;
    const active = run.state === "running" || run.state === "starting";
    if (!active && !(remote && run.state === "interrupted")) {
      throw new LoraspecError("E_RUN_STATE", `run ${run.id} is ${run.state}; there is nothing to stop`, {
        hint: run.state === "interrupted" ? `resume it with \`loraspec train --resume ${run.id}\`` : undefined,
      });
    }
    await atomicWrite(join(run.runDir, RUN_FILES.stopRequested), new Date().toISOString());
    const result: StopRunResult = { run };
    if (remote) {
      if (!params.falRunner) throw new LoraspecError("E_INTERNAL", "stopping a fal run needs a fal runner");
      await params.falRunner.cancel({ endpoint: run.remoteEndpoint!, requestId: run.remoteRequestId!, runDir: run.runDir });
      result.remoteCancelled = true;
    } else if (run.pid !== null) {
      result.signal = await stopProcessGroup({ pgid: run.pid, timeouts: params.timeouts, onStep: params.onStep });
    }
    // The supervising loraspec (if alive) records the end itself; give it a moment, then do it here.
    const until = Date.now() + (params.settleMs ?? (remote ? 0 : 3_000));
    while (Date.now() < until && ["running", "starting"].includes(store.get(run.id).state)) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const now = store.get(run.id);
    if (now.state === "running" || now.state === "starting" || (remote && now.state === "interrupted")) {
      // A fal run whose poller is still alive finishes as cancelled when it sees the result;
      // with no poller (or a local run with no supervisor) we record it now.
      if (!remote || now.state === "interrupted" || run.pid === null) {
        try {
          store.transition(run.id, "cancelled", { errorCode: "E_CANCELLED", errorMessage: "stopped by `loraspec stop`" });
        } catch (error) {
          // The supervisor got there first.
          if (!(error instanceof LoraspecError && error.code === "E_RUN_STATE")) throw error;
        }
      }
    }
    result.run = store.get(run.id);
    return result;
  } finally {
    if (!params.store) store.close();
  }
}
