import { appendFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { LoraspecError, isLoraspecError } from "@loraspec/core/errors.js";
import { processStartTime } from "./process-alive.js";
import { convertRunOutput } from "./output-format.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { FalJob } from "./train-job.js";
import type { Emit, ExecuteParams, Outcome } from "./run-training.js";

/** A fal.ai job: submitted and polled by this process (its events, logs to the run's log file, the LoRA converted to the contract's format). */
export async function* runFal(params: ExecuteParams, job: FalJob, emit: Emit, logFile: string): AsyncGenerator<LoraspecEvent, Outcome> {
  const { store, run } = params;
  if (!params.falRunner) throw new LoraspecError("E_INTERNAL", "a fal job needs a fal runner");
  if (params.resuming && run.state === "cancelled" && run.remoteRequestId) {
    // That request was cancelled on fal: resuming means a new submission (and a new charge).
    store.update(run.id, { remoteRequestId: null });
    await rm(join(run.runDir, "fal-submission.json"), { force: true });
    await rm(join(run.runDir, "cancel-requested"), { force: true });
    yield* emit({ type: "warning", code: "FAL_RESUBMIT", message: `fal request ${run.remoteRequestId} was cancelled; submitting a new one` });
  }
  // The loraspec process itself does the work (polling): its pid is what reconcile checks.
  store.transition(run.id, "running", { pid: process.pid, pidStart: processStartTime(process.pid) ?? null });
  const gen = params.falRunner.run({
    store,
    runId: run.id,
    runDir: run.runDir,
    endpoint: job.endpoint,
    input: job.input,
    archive: job.archive,
    cost: { ...job.cost, yes: params.yes, acceptUnpriced: params.acceptUnpriced },
    resubmit: params.resubmit,
    signal: params.signal,
  });
  let next = await gen.next();
  while (!next.done) {
    const event = next.value;
    // fal's own log lines go to run.log so `loraspec logs` shows them like a local trainer's.
    if (event.type === "log") appendFileSync(logFile, `${event.message}\n`);
    yield* emit(event);
    next = await gen.next();
  }
  const outcome = next.value;
  if (outcome.state === "succeeded") {
    try {
      return { state: "succeeded", output: yield* convertRunOutput({ path: outcome.loraPath, format: job.outputFormat }) };
    } catch (error) {
      if (!isLoraspecError(error)) throw error;
      return { state: "failed", error };
    }
  }
  if (outcome.state === "cancelled") return { state: "cancelled", message: `fal request ${outcome.requestId} was cancelled` };
  return { state: "interrupted", message: "loraspec stopped polling; the fal job keeps running and `--resume` re-attaches to it" };
}
