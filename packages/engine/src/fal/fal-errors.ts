import { ApiError, isRetryableError } from "@fal-ai/client";
import { LoraspecError } from "@loraspec/core/errors.js";

/** Statuses worth another poll: the client's own list plus 500 (as its status retries do). */
export const RETRYABLE_STATUS = [429, 500, 502, 503, 504];

export function submitUnknown(runId: string, endpoint: string, reason: string): LoraspecError {
  return new LoraspecError("E_SUBMIT_UNKNOWN", `the submit to ${endpoint} has an unknown outcome: ${reason}; fal may have created the job, so loraspec did not submit again`, {
    hint: `\`loraspec train --resume ${runId}\` looks the request up on fal and re-attaches (or submits once if fal has none); \`--resubmit\` submits again without looking (may bill twice); see https://fal.ai/dashboard/requests`,
    retryable: false,
  });
}

export function remoteError(error: unknown, during: string): LoraspecError {
  if (error instanceof LoraspecError) return error;
  if (error instanceof ApiError) {
    const auth = error.status === 401 || error.status === 403;
    return new LoraspecError(auth ? "E_REMOTE_AUTH" : "E_REMOTE", `fal ${during} failed: HTTP ${error.status} ${error.message}`, {
      hint: auth ? "check FAL_KEY" : "fal may be having trouble; resume later with `loraspec train --resume <id>`",
      details: { status: error.status, body: error.body, requestId: error.requestId },
      retryable: !auth && isRetryableError(error, RETRYABLE_STATUS),
    });
  }
  return new LoraspecError("E_REMOTE", `fal ${during} failed: ${(error as Error).message ?? String(error)}`, {
    hint: "check the network; resume with `loraspec train --resume <id>`",
    retryable: true,
  });
}
