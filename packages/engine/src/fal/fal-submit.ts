import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { ApiError, type StorageSettings } from "@fal-ai/client";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { FalRunParams } from "./create-fal-runner.js";
import type { FalConnection } from "./fal-connection.js";
import { remoteError, submitUnknown } from "./fal-errors.js";
import { writeJournal, type Submission } from "./fal-journal.js";
import { FAL_POLICY } from "./fal-policy.js";
import { findSubmittedRequest } from "./find-submitted-request.js";
import { submitOnce } from "./submit-once.js";

/**
 * Uploads the dataset ZIP (when there is one) into the input and submits the job once, journalling
 * before the POST and after its answer; returns the new request id, persisted before any poll.
 */
export async function* submitNewRequest(fal: FalConnection, params: FalRunParams, journalPath: string): AsyncGenerator<LoraspecEvent, string> {
  const { store, runId, endpoint, signal } = params;
  const input = { ...params.input };
  if (params.archive) {
    yield { type: "phase", name: "upload", message: basename(params.archive.path) };
    input[params.archive.field] = await uploadArchive(fal, params.archive.path);
  }
  yield { type: "phase", name: "submit", message: endpoint };
  const at = new Date().toISOString();
  await writeJournal(journalPath, { state: "submitting", endpoint, at, input });
  store.update(runId, { remoteEndpoint: endpoint });
  // One POST, no retry: a retry after a lost answer is how a second paid job gets made.
  const answer = await submitOnce({ endpoint, input, credentials: fal.credentials!, fetch: fal.fetch, middleware: fal.middleware, signal });
  if (answer.kind === "rejected") {
    await writeJournal(journalPath, { state: "rejected", endpoint, at, input, note: `HTTP ${answer.status}` });
    throw remoteError(new ApiError({ message: `HTTP ${answer.status}`, status: answer.status, body: answer.body }), "submit");
  }
  if (answer.kind === "unknown") {
    await writeJournal(journalPath, { state: "unknown", endpoint, at, input, note: answer.reason });
    throw submitUnknown(runId, endpoint, answer.reason);
  }
  const requestId = answer.requestId;
  // Persist before the first poll: a restarted loraspec re-attaches instead of paying twice.
  store.update(runId, { remoteRequestId: requestId, remoteEndpoint: endpoint });
  await writeJournal(journalPath, { state: "submitted", endpoint, requestId, at, input });
  yield { type: "log", level: "info", message: `fal request ${requestId}` };
  return requestId;
}

/** Uploads the dataset ZIP to fal's storage; returns its URL. */
async function uploadArchive(fal: FalConnection, path: string): Promise<string> {
  const bytes = await readFile(path);
  const lifecycle: StorageSettings = fal.storage ?? { expiresIn: FAL_POLICY.datasetExpiresIn.value };
  return fal.client.storage.upload(new Blob([bytes], { type: "application/zip" }), { lifecycle });
}

/**
 * A journal left by a submit whose outcome is unknown (no answer, a 5xx/429, or loraspec killed
 * during the POST): look the request up on fal and re-attach, or learn it never existed; where
 * fal cannot tell, stop with E_SUBMIT_UNKNOWN unless the user passed --resubmit.
 */
export async function* resolveLostSubmit(
  fal: FalConnection,
  params: FalRunParams,
  journal: Submission | undefined,
  journalPath: string,
): AsyncGenerator<LoraspecEvent, string | undefined> {
  if (!journal || (journal.state !== "unknown" && journal.state !== "submitting")) return undefined;
  const { store, runId, endpoint, signal } = params;
  if (params.resubmit) {
    yield { type: "warning", code: "FAL_RESUBMIT", message: `submitting again although the submit of ${journal.at} may have made a job (--resubmit)` };
    return undefined;
  }
  yield { type: "phase", name: "lookup", message: `the submit of ${journal.at} got no answer; looking for its request on fal` };
  const age = Date.now() - Date.parse(journal.at);
  const settle = fal.lookupSettleMs ?? FAL_POLICY.lookupSettleMs.value;
  const answer = journal.input
    ? await findSubmittedRequest({ endpoint: journal.endpoint, input: journal.input, at: journal.at, credentials: fal.credentials!, fetch: fal.fetch, middleware: fal.middleware, signal })
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
