import { setTimeout as delay } from "node:timers/promises";
import { ApiError, isRetryableError, type QueueStatus } from "@fal-ai/client";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { FalOutcome } from "./create-fal-runner.js";
import type { FalConnection } from "./fal-connection.js";
import { RETRYABLE_STATUS, remoteError } from "./fal-errors.js";
import { FAL_POLICY } from "./fal-policy.js";

/**
 * Polls a request until fal says COMPLETED, turning status changes into phases and new log lines
 * into events; transient status failures are retried up to FAL_POLICY.transientRetries in a row.
 * Returns undefined once completed, or a detached outcome when the signal stopped the polling.
 */
export async function* pollUntilComplete(
  fal: FalConnection,
  endpoint: string,
  requestId: string,
  signal: AbortSignal | undefined,
): AsyncGenerator<LoraspecEvent, FalOutcome | undefined> {
  let seenLogs = 0;
  let lastState = "";
  let failures = 0;
  for (;;) {
    if (signal?.aborted) return { state: "detached", requestId };
    let status: QueueStatus;
    try {
      status = await fal.client.queue.status(endpoint, { requestId, logs: true, abortSignal: signal });
      failures = 0;
    } catch (error) {
      if (signal?.aborted) return { state: "detached", requestId };
      if (error instanceof ApiError && error.status === 404) {
        throw new LoraspecError("E_REMOTE", `fal does not know request ${requestId}`, { hint: "it may have expired; start a new run", retryable: false });
      }
      if (isRetryableError(error, RETRYABLE_STATUS) && ++failures <= FAL_POLICY.transientRetries.value) {
        yield { type: "warning", code: "E_REMOTE", message: `fal status failed (${(error as Error).message}); retrying` };
        await sleep(fal.pollMs, signal);
        continue;
      }
      throw remoteError(error, "status");
    }
    if (status.status !== lastState) {
      lastState = status.status;
      if (status.status === "IN_QUEUE") yield { type: "phase", name: "queued", message: `position ${status.queue_position}` };
      if (status.status === "IN_PROGRESS") yield { type: "phase", name: "train", message: "running on fal" };
    }
    const logs = "logs" in status && Array.isArray(status.logs) ? status.logs : [];
    for (const log of logs.slice(seenLogs)) for (const event of logEvents(log.message)) yield event;
    seenLogs = Math.max(seenLogs, logs.length);
    if (status.status === "COMPLETED") return undefined;
    await sleep(fal.pollMs, signal);
  }
}

/** fal's logs become log events; `step N/M` and `loss=x` in them become progress and loss. */
function logEvents(message: string): LoraspecEvent[] {
  const events: LoraspecEvent[] = [{ type: "log", level: "info", message }];
  const step = /\b(\d+)\s*\/\s*(\d+)\b/.exec(message);
  if (step && /step|it|train|%/i.test(message)) {
    const current = Number(step[1]);
    events.push({ type: "progress", task: "train", current, total: Number(step[2]) });
    const loss = /\bloss[=:\s]+([0-9.eE+-]+|nan)/i.exec(message);
    if (loss) events.push({ type: "loss", step: current, loss: Number(loss[1]) });
  }
  return events;
}

/** Waits ms, or less when signal aborts (the caller looks at signal next). */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => undefined);
}
