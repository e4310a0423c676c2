import { join } from "node:path";
import { ApiError, createFalClient, withMiddleware, type RequestMiddleware, type StorageSettings } from "@fal-ai/client";
import { LoraspecError } from "@loraspec/core/errors.js";
import { costUncheckedError } from "../run/cost-guard.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { atomicWrite } from "../fs/atomic-write.js";
import type { RunStore } from "../run/run-store.js";
import type { LoraOutputSummary } from "../run/verify-lora-output.js";
import { hostMiddleware, requireKey, type FalConnection } from "./fal-connection.js";
import { remoteError } from "./fal-errors.js";
import { CANCEL_MARKER, SUBMISSION_FILE, readJournal } from "./fal-journal.js";
import { collectOutputs } from "./fal-outputs.js";
import { pollUntilComplete } from "./fal-poll.js";
import { FAL_POLICY } from "./fal-policy.js";
import { resolveLostSubmit, submitNewRequest } from "./fal-submit.js";

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
  /** The plan's estimate against the contract's limit; over it, refuse unless yes; with no estimate, refuse unless acceptUnpriced. */
  cost?: { estimateUsd?: number; maxCostUsd?: number; yes?: boolean; acceptUnpriced?: boolean };
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

export function checkCostLimit(cost: FalRunParams["cost"], endpoint?: string): void {
  if (!cost || cost.maxCostUsd === undefined) return;
  // A ceiling with no estimate is never a silent pass: the job bills. Its override is its own (--accept-unpriced), not --yes.
  if (cost.estimateUsd === undefined) {
    if (cost.acceptUnpriced) return;
    throw costUncheckedError({ maxUsd: cost.maxCostUsd, basis: "no estimate", endpoint });
  }
  if (cost.estimateUsd > cost.maxCostUsd && !cost.yes) {
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
  const fal = connectFal(config);
  return {
    run: (params) => runOnFal(fal, params),
    async cancel({ endpoint, requestId, runDir, signal }) {
      requireKey(fal.credentials);
      if (runDir) await atomicWrite(join(runDir, CANCEL_MARKER), new Date().toISOString());
      try {
        await fal.client.queue.cancel(endpoint, { requestId, abortSignal: signal });
      } catch (error) {
        // ALREADY_COMPLETED answers 400: nothing left to cancel.
        if (error instanceof ApiError && error.status === 400) return;
        throw remoteError(error, "cancel");
      }
    },
  };
}

/** The fal client for a config: its key, fetch, hosts and middleware, and the poll interval. */
function connectFal(config: FalRunnerConfig): FalConnection {
  const baseFetch = config.fetch ?? fetch;
  const credentials = config.credentials ?? falCredentialsFromEnv();
  const hosts = config.hosts ?? falRunnerConfigFromEnv().hosts ?? {};
  const middlewares = [hostMiddleware(hosts), config.requestMiddleware].filter((m): m is RequestMiddleware => m !== undefined);
  const middleware = middlewares.length > 0 ? withMiddleware(...middlewares) : undefined;
  const client = createFalClient({
    credentials: () => credentials,
    fetch: baseFetch,
    ...(middleware ? { requestMiddleware: middleware } : {}),
    suppressLocalCredentialsWarning: true,
  });
  const pollMs = config.pollIntervalMs ?? falRunnerConfigFromEnv().pollIntervalMs ?? FAL_POLICY.pollIntervalMs.value;
  return { client, fetch: baseFetch, credentials, middleware, pollMs, lookupSettleMs: config.lookupSettleMs, storage: config.storage };
}

/**
 * One run: re-attach to the request the store or journal knows (or a lost submit's, found by
 * lookup), else check the cost and submit once; then poll until done and collect the outputs.
 */
async function* runOnFal(fal: FalConnection, params: FalRunParams): AsyncGenerator<LoraspecEvent, FalOutcome> {
  const { store, runId, runDir, endpoint, signal } = params;
  requireKey(fal.credentials);
  const journalPath = join(runDir, SUBMISSION_FILE);
  const journal = readJournal(journalPath);
  let requestId = store.get(runId).remoteRequestId ?? journal?.requestId;

  if (!requestId) requestId = yield* resolveLostSubmit(fal, params, journal, journalPath);
  if (!requestId) {
    checkCostLimit(params.cost, params.endpoint);
    requestId = yield* submitNewRequest(fal, params, journalPath);
  } else {
    yield { type: "phase", name: "attach", message: `fal request ${requestId}` };
  }

  const stopped = yield* pollUntilComplete(fal, endpoint, requestId, signal);
  if (stopped) return stopped;
  return yield* collectOutputs(fal, params, requestId);
}
