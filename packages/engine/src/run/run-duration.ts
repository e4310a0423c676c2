import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readLines } from "../fs/read-lines.js";
import type { RunRecord } from "./run-store.js";

/** Earlier attempts of a run, one JSON line each, appended when a resume starts. */
export const ATTEMPTS_FILE = "attempts.jsonl";

/** Called as an attempt starts: files the previous attempt's span so the total survives the row's reset. */
export function recordPreviousAttempt(run: RunRecord): void {
  if (!run.startedAt || !run.endedAt) return;
  const line = { attempt: run.attempts, startedAt: run.startedAt, endedAt: run.endedAt, state: run.state };
  appendFileSync(join(run.runDir, ATTEMPTS_FILE), `${JSON.stringify(line)}\n`);
}

/**
 * Seconds a run has been active over all its attempts (the current one until now if it is still
 * going). attempts.jsonl is read line by line (fs/read-lines.ts); a torn line, or one over
 * FILE_LIMITS.eventLine, is not counted.
 */
export async function runDurationSeconds(run: RunRecord, now: number = Date.now()): Promise<number | undefined> {
  if (!run.startedAt) return undefined;
  let total = 0;
  try {
    for await (const line of readLines({ file: join(run.runDir, ATTEMPTS_FILE), limit: FILE_LIMITS.eventLine })) {
      if (line.kind !== "line" || !line.text.trim()) continue;
      try {
        const a = JSON.parse(line.text) as { startedAt: string; endedAt: string };
        total += Math.max(0, Date.parse(a.endedAt) - Date.parse(a.startedAt));
      } catch {
        // a torn line: that attempt is not counted
      }
    }
  } catch {
    // a run that never resumed has no file
  }
  const end = run.endedAt ? Date.parse(run.endedAt) : now;
  return (total + Math.max(0, end - Date.parse(run.startedAt))) / 1000;
}
