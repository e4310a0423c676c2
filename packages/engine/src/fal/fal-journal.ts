import { atomicWrite } from "../fs/atomic-write.js";
import { readRunJsonSync } from "../run/run-files.js";

/**
 * The journal beside the run: what we sent and what fal answered, so a restart never pays twice.
 * `submitting` is written before the POST (a loraspec killed during the submit leaves it), `unknown`
 * when no answer said whether the job exists, `rejected` when fal said no (no job), `submitted` with
 * the request id. `input` is the input as sent (its dataset URL makes it unique): the lookup key.
 */
export interface Submission {
  state: "submitting" | "submitted" | "unknown" | "rejected";
  endpoint: string;
  requestId?: string;
  at: string;
  input?: Record<string, unknown>;
  /** Why the outcome is unknown, or how a lookup resolved it. */
  note?: string;
}

export const SUBMISSION_FILE = "fal-submission.json";

/** The journal, or undefined when missing or torn; one too large to be one is E_FILE_TOO_LARGE naming it. */
export function readJournal(path: string): Submission | undefined {
  const journal = readRunJsonSync(path);
  return typeof journal === "object" && journal !== null ? (journal as Submission) : undefined;
}

export async function writeJournal(path: string, submission: Submission): Promise<void> {
  await atomicWrite(path, `${JSON.stringify(submission, null, 2)}\n`);
}

/** Left in the run folder by `cancel`: a result that then cannot be fetched counts as cancelled. */
export const CANCEL_MARKER = "cancel-requested";
