import { existsSync } from "node:fs";
import { join } from "node:path";
import { ApiError } from "@fal-ai/client";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { verifyLoraOutput } from "../run/verify-lora-output.js";
import type { FalOutcome } from "./create-fal-runner.js";
import type { FalConnection } from "./fal-connection.js";
import { remoteError } from "./fal-errors.js";
import { CANCEL_MARKER } from "./fal-journal.js";

/**
 * Fetches a completed request's result, downloads diffusers_lora_file (and config_file, when
 * there is one) into the run folder and checks the LoRA. A result that cannot be fetched after a
 * cancel (ours, or one fal reports) is a cancelled outcome; an abort is a detached one.
 */
export async function* collectOutputs(
  fal: FalConnection,
  params: { endpoint: string; runDir: string; signal?: AbortSignal },
  requestId: string,
): AsyncGenerator<LoraspecEvent, FalOutcome> {
  const { endpoint, runDir, signal } = params;
  const cancelRequested = existsSync(join(runDir, CANCEL_MARKER));
  let result: { data: Record<string, unknown> };
  try {
    result = (await fal.client.queue.result(endpoint, { requestId, abortSignal: signal })) as { data: Record<string, unknown> };
  } catch (error) {
    if (signal?.aborted) return { state: "detached", requestId };
    const detail = error instanceof ApiError ? JSON.stringify(error.body ?? "") : String(error);
    if (cancelRequested || /cancel/i.test(detail)) return { state: "cancelled", requestId };
    throw remoteError(error, "result");
  }
  yield { type: "phase", name: "download" };
  const loraFile = result.data.diffusers_lora_file as { url?: string } | undefined;
  if (!loraFile?.url) {
    throw new LoraspecError("E_NO_OUTPUT", `fal request ${requestId} finished without diffusers_lora_file`, { details: { keys: Object.keys(result.data) } });
  }
  const loraPath = join(runDir, "lora.safetensors");
  await download(fal.fetch, loraFile.url, loraPath, signal);
  let configPath: string | undefined;
  const configFile = result.data.config_file as { url?: string } | undefined;
  if (configFile?.url) {
    configPath = join(runDir, "fal-config.json");
    await download(fal.fetch, configFile.url, configPath, signal);
  }
  const lora = await verifyLoraOutput({ path: loraPath });
  return { state: "succeeded", requestId, loraPath, configPath, lora };
}

async function download(fetcher: typeof fetch, url: string, path: string, signal?: AbortSignal): Promise<void> {
  const response = await fetcher(url, { signal });
  if (!response.ok) {
    throw new LoraspecError("E_REMOTE", `downloading ${url} failed: HTTP ${response.status}`, { retryable: response.status >= 500 });
  }
  await atomicWrite(path, new Uint8Array(await response.arrayBuffer()));
}
