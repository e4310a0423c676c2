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
 * going), or undefined when it has not started or its own start or end is not a date (a row from a
 * copied project). attempts.jsonl is read line by line (fs/read-lines.ts); a torn line, one over
 * FILE_LIMITS.eventLine, or one without two valid dates is not counted, so nothing adds NaN.
 */
export async function runDurationSeconds(run: RunRecord, now: number = Date.now()): Promise<number | undefined> {
  const started = dateMs(run.startedAt);
  const end = run.endedAt ? dateMs(run.endedAt) : now;
  if (started === undefined || end === undefined) return undefined;
  let total = 0;
  try {
    for await (const line of readLines({ file: join(run.runDir, ATTEMPTS_FILE), limit: FILE_LIMITS.eventLine })) {
      if (line.kind !== "line" || !line.text.trim()) continue;
      let a: unknown;
      try {
        a = JSON.parse(line.text);
      } catch {
        continue; // a torn line: that attempt is not counted
      }
      const span = a && typeof a === "object" ? [dateMs((a as { startedAt?: unknown }).startedAt), dateMs((a as { endedAt?: unknown }).endedAt)] : [];
      if (span[0] === undefined || span[1] === undefined) continue; // no dates: not counted
      total += Math.max(0, span[1] - span[0]);
    }
  } catch {
    // a run that never resumed has no file
  }
  return (total + Math.max(0, end - started)) / 1000;
}

/** Milliseconds of an ISO date string; undefined for anything else (missing, a number, not a date). */
function dateMs(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}
