import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { ApiError, createFalClient, isRetryableError, withMiddleware, type QueueStatus, type RequestMiddleware, type StorageSettings } from "@fal-ai/client";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { readRunJsonSync } from "../run/run-files.js";
import type { RunStore } from "../run/run-store.js";
import { verifyLoraOutput, type LoraOutputSummary } from "../run/verify-lora-output.js";
import { FAL_POLICY } from "./fal-policy.js";
import { findSubmittedRequest } from "./find-submitted-request.js";
import { submitOnce } from "./submit-once.js";

export interface FalRunnerConfig {
  /** The fal key; defaults to FAL_KEY (or FAL_KEY_ID + FAL_KEY_SECRET). Never written anywhere. */
  credentials?: string;
  /** Injectable fetch (tests point it at the local emulator). */
  fetch?: typeof fetch;
  /** Rewrites every queue/storage request (a proxy, an emulator). */
  requestMiddleware?: RequestMiddleware;
  pollIntervalMs?: number;
  /**
   * Other queue / REST hosts than fal's defaults (e.g. the backup queue host
   * https://queue.falrun.com, trainers.md §4.3, or a gateway). Default: $LORASPEC_FAL_QUEUE_URL
   * and $LORASPEC_FAL_REST_URL when set.
   */
  hosts?: { queue?: string; rest?: string; api?: string };
  /** How old a lost submit must be before "fal lists no such request" is trusted (default FAL_POLICY). */
  lookupSettleMs?: number;
  /** Lifecycle of the uploaded dataset ZIP on fal's storage (default: expires after 1 day). */
  storage?: StorageSettings;
}

/** The runner's settings a user can give through the environment (never the key's storage). */
export function falRunnerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): FalRunnerConfig {
  const poll = Number(env.LORASPEC_FAL_POLL_MS);
  return {
    ...(Number.isFinite(poll) && poll > 0 ? { pollIntervalMs: poll } : {}),
    hosts: { queue: env.LORASPEC_FAL_QUEUE_URL || undefined, rest: env.LORASPEC_FAL_REST_URL || undefined, api: env.LORASPEC_FAL_API_URL || undefined },
  };
}

export interface FalRunParams {
  store: RunStore;
  runId: string;
  runDir: string;
  /** fal endpoint id, e.g. fal-ai/flux-lora-fast-training. */
  endpoint: string;
  /** The endpoint input, as the fal compiler wrote it. */
  input: Record<string, unknown>;
  /** The dataset ZIP to upload; its URL goes into input[field] (images_data_url / image_data_url). */
  archive?: { path: string; field: string };
  /** The plan's estimate against the contract's limit; over it, refuse unless yes. */
  cost?: { estimateUsd?: number; maxCostUsd?: number; yes?: boolean };
  /** Submit again although an earlier submit's outcome is unknown (it may bill twice). */
  resubmit?: boolean;
  /** Stop polling (Ctrl-C): the remote job keeps running and `--resume` re-attaches. */
  signal?: AbortSignal;
}

export type FalOutcome =
  | { state: "succeeded"; requestId: string; loraPath: string; configPath?: string; lora: LoraOutputSummary }
  | { state: "cancelled"; requestId: string }
  | { state: "detached"; requestId?: string };

export interface FalRunner {
  run(params: FalRunParams): AsyncGenerator<LoraspecEvent, FalOutcome>;
  /** Asks fal to cancel a request ("Do not assume a cancel stops billing immediately"). */
  cancel(params: { endpoint: string; requestId: string; runDir?: string; signal?: AbortSignal }): Promise<void>;
}

/**
 * The journal beside the run: what we sent and what fal answered, so a restart never pays twice.
 * `submitting` is written before the POST (a loraspec killed during the submit leaves it), `unknown`
 * when no answer said whether the job exists, `rejected` when fal said no (no job), `submitted` with
 * the request id. `input` is the input as sent (its dataset URL makes it unique): the lookup key.
 */
interface Submission {
  state: "submitting" | "submitted" | "unknown" | "rejected";
  endpoint: string;
  requestId?: string;
  at: string;
  input?: Record<string, unknown>;
  /** Why the outcome is unknown, or how a lookup resolved it. */
  note?: string;
}
const SUBMISSION_FILE = "fal-submission.json";
/** Statuses worth another poll: the client's own list plus 500 (as its status retries do). */
const RETRYABLE_STATUS = [429, 500, 502, 503, 504];
const CANCEL_MARKER = "cancel-requested";

export function checkCostLimit(cost: FalRunParams["cost"]): void {
  if (!cost || cost.yes || cost.estimateUsd === undefined || cost.maxCostUsd === undefined) return;
  if (cost.estimateUsd > cost.maxCostUsd) {
    throw new LoraspecError(
      "E_COST_LIMIT",
      `the estimated cost $${cost.estimateUsd.toFixed(2)} is over limits.max_cost_usd $${cost.maxCostUsd.toFixed(2)}`,
      { field: "limits.max_cost_usd", hint: "lower hyperparameters.steps, raise limits.max_cost_usd, or pass --yes to accept the cost" },
    );
  }
}

export function falCredentialsFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.FAL_KEY) return env.FAL_KEY;
  if (env.FAL_KEY_ID && env.FAL_KEY_SECRET) return `${env.FAL_KEY_ID}:${env.FAL_KEY_SECRET}`;
  return undefined;
}

/**
 * Runs a training job on fal.ai through @fal-ai/client: upload the ZIP, submit to the queue,
 * journal the request id before the first poll, stream status and logs as events, download
 * diffusers_lora_file and config_file into the run folder and check the LoRA.
 */
export function createFalRunner(config: FalRunnerConfig = {}): FalRunner {
  const baseFetch = config.fetch ?? fetch;
  const credentials = config.credentials ?? falCredentialsFromEnv();
  const hosts = config.hosts ?? falRunnerConfigFromEnv().hosts ?? {};
  const rewrite: [string, string][] = [];
  if (hosts.queue) rewrite.push(["https://queue.fal.run/", `${hosts.queue.replace(/\/$/, "")}/`]);
  if (hosts.rest) rewrite.push(["https://rest.fal.ai/", `${hosts.rest.replace(/\/$/, "")}/`]);
  if (hosts.api) rewrite.push(["https://api.fal.ai/", `${hosts.api.replace(/\/$/, "")}/`]);
  const hostMiddleware: RequestMiddleware | undefined =
    rewrite.length === 0
      ? undefined
      : async (request) => {
          const hit = rewrite.find(([from]) => request.url.startsWith(from));
          return hit ? { ...request, url: hit[1] + request.url.slice(hit[0].length) } : request;
        };
  const middlewares = [hostMiddleware, config.requestMiddleware].filter((m): m is RequestMiddleware => m !== undefined);
  const middleware = middlewares.length > 0 ? withMiddleware(...middlewares) : undefined;
  const client = createFalClient({
    credentials: () => credentials,
    fetch: baseFetch,
    ...(middleware ? { requestMiddleware: middleware } : {}),
    suppressLocalCredentialsWarning: true,
  });
  const pollMs = config.pollIntervalMs ?? falRunnerConfigFromEnv().pollIntervalMs ?? FAL_POLICY.pollIntervalMs.value;

  const requireKey = () => {
    if (!credentials) {
      throw new LoraspecError("E_REMOTE_AUTH", "no fal.ai key: FAL_KEY is not set", {
        hint: "export FAL_KEY=... (from https://fal.ai/dashboard/keys); loraspec never stores it",
      });
    }
  };

  async function* run(params: FalRunParams): AsyncGenerator<LoraspecEvent, FalOutcome> {
    const { store, runId, runDir, endpoint, signal } = params;
    requireKey();
    const journalPath = join(runDir, SUBMISSION_FILE);
    const journal = readJournal(journalPath);
    let requestId = store.get(runId).remoteRequestId ?? journal?.requestId;

    if (!requestId) {
      const found = yield* resolveLostSubmit(params, journal, journalPath);
      requestId = found;
    }
    if (!requestId) {
      checkCostLimit(params.cost);
      const input = { ...params.input };
      if (params.archive) {
        yield { type: "phase", name: "upload", message: basename(params.archive.path) };
        const bytes = await readFile(params.archive.path);
        const lifecycle: StorageSettings = config.storage ?? { expiresIn: FAL_POLICY.datasetExpiresIn.value };
        const url = await client.storage.upload(new Blob([bytes], { type: "application/zip" }), { lifecycle });
        input[params.archive.field] = url;
      }
      yield { type: "phase", name: "submit", message: endpoint };
      const at = new Date().toISOString();
      await writeJournal(journalPath, { state: "submitting", endpoint, at, input });
      store.update(runId, { remoteEndpoint: endpoint });
      // One POST, no retry: a retry after a lost answer is how a second paid job gets made.
      const answer = await submitOnce({ endpoint, input, credentials: credentials!, fetch: baseFetch, middleware, signal });
      if (answer.kind === "rejected") {
        await writeJournal(journalPath, { state: "rejected", endpoint, at, input, note: `HTTP ${answer.status}` });
        throw remoteError(new ApiError({ message: `HTTP ${answer.status}`, status: answer.status, body: answer.body }), "submit");
      }
      if (answer.kind === "unknown") {
        await writeJournal(journalPath, { state: "unknown", endpoint, at, input, note: answer.reason });
        throw submitUnknown(runId, endpoint, answer.reason);
      }
      requestId = answer.requestId;
      // Persist before the first poll: a restarted loraspec re-attaches instead of paying twice.
      store.update(runId, { remoteRequestId: requestId, remoteEndpoint: endpoint });
      await writeJournal(journalPath, { state: "submitted", endpoint, requestId, at, input });
      yield { type: "log", level: "info", message: `fal request ${requestId}` };
    } else {
      yield { type: "phase", name: "attach", message: `fal request ${requestId}` };
    }

    let seenLogs = 0;
    let lastState = "";
    let failures = 0;
    for (;;) {
      if (signal?.aborted) return { state: "detached", requestId };
      let status: QueueStatus;
      try {
        status = await client.queue.status(endpoint, { requestId, logs: true, abortSignal: signal });
        failures = 0;
      } catch (error) {
        if (signal?.aborted) return { state: "detached", requestId };
        if (error instanceof ApiError && error.status === 404) {
          throw new LoraspecError("E_REMOTE", `fal does not know request ${requestId}`, { hint: "it may have expired; start a new run", retryable: false });
        }
        if (isRetryableError(error, RETRYABLE_STATUS) && ++failures <= FAL_POLICY.transientRetries.value) {
          yield { type: "warning", code: "E_REMOTE", message: `fal status failed (${(error as Error).message}); retrying` };
          await sleep(pollMs, signal);
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
      if (status.status === "COMPLETED") break;
      await sleep(pollMs, signal);
    }

    const cancelRequested = existsSync(join(runDir, CANCEL_MARKER));
    let result: { data: Record<string, unknown> };
    try {
      result = (await client.queue.result(endpoint, { requestId, abortSignal: signal })) as { data: Record<string, unknown> };
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
    await download(baseFetch, loraFile.url, loraPath, signal);
    let configPath: string | undefined;
    const configFile = result.data.config_file as { url?: string } | undefined;
    if (configFile?.url) {
      configPath = join(runDir, "fal-config.json");
      await download(baseFetch, configFile.url, configPath, signal);
    }
    const lora = await verifyLoraOutput({ path: loraPath });
    return { state: "succeeded", requestId, loraPath, configPath, lora };
  }

  /**
   * A journal left by a submit whose outcome is unknown (no answer, a 5xx/429, or loraspec killed
   * during the POST): look the request up on fal and re-attach, or learn it never existed; where
   * fal cannot tell, stop with E_SUBMIT_UNKNOWN unless the user passed --resubmit.
   */
  async function* resolveLostSubmit(params: FalRunParams, journal: Submission | undefined, journalPath: string): AsyncGenerator<LoraspecEvent, string | undefined> {
    if (!journal || (journal.state !== "unknown" && journal.state !== "submitting")) return undefined;
    const { store, runId, endpoint, signal } = params;
    if (params.resubmit) {
      yield { type: "warning", code: "FAL_RESUBMIT", message: `submitting again although the submit of ${journal.at} may have made a job (--resubmit)` };
      return undefined;
    }
    yield { type: "phase", name: "lookup", message: `the submit of ${journal.at} got no answer; looking for its request on fal` };
    const age = Date.now() - Date.parse(journal.at);
    const settle = config.lookupSettleMs ?? FAL_POLICY.lookupSettleMs.value;
    const answer = journal.input
      ? await findSubmittedRequest({ endpoint: journal.endpoint, input: journal.input, at: journal.at, credentials: credentials!, fetch: baseFetch, middleware, signal })
      : ({ kind: "unsure", reason: "the journal does not hold the input that was sent", candidates: [] } as const);
    if (answer.kind === "found") {
      store.update(runId, { remoteRequestId: answer.requestId, remoteEndpoint: journal.endpoint });
      await writeJournal(journalPath, { ...journal, state: "submitted", requestId: answer.requestId, note: "found by lookup after a lost answer" });
      yield { type: "warning", code: "FAL_REATTACH", message: `fal has request ${answer.requestId} from the lost submit; re-attaching (no new job)` };
      return answer.requestId;
    }
    if (answer.kind === "none" && age >= settle) {
      await writeJournal(journalPath, { ...journal, state: "rejected", note: `lookup at ${new Date().toISOString()}: fal lists no such request` });
      yield { type: "warning", code: "FAL_NO_JOB", message: `fal lists no request from the submit of ${journal.at}; submitting once` };
      return undefined;
    }
    const why =
      answer.kind === "none"
        ? `fal lists no such request yet, but the submit is only ${Math.round(age / 1000)} s old (its list may lag); try again in ${Math.ceil((settle - age) / 1000)} s`
        : `${answer.reason}${answer.candidates.length > 0 ? ` (candidates: ${answer.candidates.join(", ")})` : ""}`;
    throw submitUnknown(runId, endpoint, why);
  }

  return {
    run,
    async cancel({ endpoint, requestId, runDir, signal }) {
      requireKey();
      if (runDir) await atomicWrite(join(runDir, CANCEL_MARKER), new Date().toISOString());
      try {
        await client.queue.cancel(endpoint, { requestId, abortSignal: signal });
      } catch (error) {
        // ALREADY_COMPLETED answers 400: nothing left to cancel.
        if (error instanceof ApiError && error.status === 400) return;
        throw remoteError(error, "cancel");
      }
    },
  };
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

function submitUnknown(runId: string, endpoint: string, reason: string): LoraspecError {
  return new LoraspecError("E_SUBMIT_UNKNOWN", `the submit to ${endpoint} has an unknown outcome: ${reason}; fal may have created the job, so loraspec did not submit again`, {
    hint: `\`loraspec train --resume ${runId}\` looks the request up on fal and re-attaches (or submits once if fal has none); \`--resubmit\` submits again without looking (may bill twice); see https://fal.ai/dashboard/requests`,
    retryable: false,
  });
}

function remoteError(error: unknown, during: string): LoraspecError {
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

async function download(fetcher: typeof fetch, url: string, path: string, signal?: AbortSignal): Promise<void> {
  const response = await fetcher(url, { signal });
  if (!response.ok) {
    throw new LoraspecError("E_REMOTE", `downloading ${url} failed: HTTP ${response.status}`, { retryable: response.status >= 500 });
  }
  await atomicWrite(path, new Uint8Array(await response.arrayBuffer()));
}

/** The journal, or undefined when missing or torn; one too large to be one is E_FILE_TOO_LARGE naming it. */
function readJournal(path: string): Submission | undefined {
  const journal = readRunJsonSync(path);
  return typeof journal === "object" && journal !== null ? (journal as Submission) : undefined;
}

async function writeJournal(path: string, submission: Submission): Promise<void> {
  await atomicWrite(path, `${JSON.stringify(submission, null, 2)}\n`);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
