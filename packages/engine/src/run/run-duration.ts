import { appendFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { RunRecord } from "./run-store.js";

/** Earlier attempts of a run, one JSON line each, appended when a resume starts. */
export const ATTEMPTS_FILE = "attempts.jsonl";

/** Called as an attempt starts: files the previous attempt's span so the total survives the row's reset. */
export function recordPreviousAttempt(run: RunRecord): void {
  if (!run.startedAt || !run.endedAt) return;
  const line = { attempt: run.attempts, startedAt: run.startedAt, endedAt: run.endedAt, state: run.state };
  appendFileSync(join(run.runDir, ATTEMPTS_FILE), `${JSON.stringify(line)}\n`);
}

/** Seconds a run has been active over all its attempts (the current one until now if it is still going). */
export function runDurationSeconds(run: RunRecord, now: number = Date.now()): number | undefined {
  if (!run.startedAt) return undefined;
  let total = 0;
  let text = "";
  try {
    text = readFileSync(join(run.runDir, ATTEMPTS_FILE), "utf8");
  } catch {
    // a run that never resumed has no file
  }
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const a = JSON.parse(line) as { startedAt: string; endedAt: string };
      total += Math.max(0, Date.parse(a.endedAt) - Date.parse(a.startedAt));
    } catch {
      // a torn line: that attempt is not counted
    }
  }
  const end = run.endedAt ? Date.parse(run.endedAt) : now;
  return (total + Math.max(0, end - Date.parse(run.startedAt))) / 1000;
}
