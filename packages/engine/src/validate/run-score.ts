import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { ScoreRequest, ScoreResult } from "@loraspec/core/validate/score-request.js";
import type { RunWorkerFn } from "../samplers/worker-sampler.js";

/**
 * Runs the worker's `score` command; yields its events (without `done`) and hands the result to
 * `onResult`, so the caller keeps one event stream.
 */
export async function* runScore(params: {
  request: ScoreRequest;
  runWorker: RunWorkerFn;
  onResult: (result: ScoreResult) => void;
  signal?: AbortSignal;
  logFile?: string;
}): AsyncGenerator<LoraspecEvent> {
  let result: ScoreResult | undefined;
  for await (const event of params.runWorker({ command: "score", request: params.request, signal: params.signal, logFile: params.logFile })) {
    if (event.type === "done") result = event.result as unknown as ScoreResult;
    else yield event;
  }
  if (!result || typeof result !== "object" || !("sets" in result)) {
    throw new LoraspecError("E_WORKER_PROTOCOL", "the score command ended without scores");
  }
  params.onResult(result);
}
