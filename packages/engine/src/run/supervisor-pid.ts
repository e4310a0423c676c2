import { join } from "node:path";
import { isProcessAlive, processStartTime } from "./process-alive.js";
import { readRunTextSync } from "./run-files.js";

/**
 * The loraspec process supervising a run, from `<runDir>/supervisor.pid` (its pid and start time);
 * undefined when the file is missing or says no pid. One too large to be a pid file is
 * E_FILE_TOO_LARGE naming it, unread (run-files.ts readRunTextSync).
 */
export function readSupervisorPid(runDir: string): { pid: number; start: string | null } | undefined {
  const text = readRunTextSync(join(runDir, "supervisor.pid"));
  if (text === undefined) return undefined;
  const [pid, start] = text.trim().split(/\s+/);
  const n = Number(pid);
  if (!Number.isInteger(n) || n <= 0) return undefined;
  return { pid: n, start: start ? start : null };
}

/**
 * Whether the loraspec process supervising a run (its pid and start time in
 * `<runDir>/supervisor.pid`) is alive; undefined when the file is missing.
 */
export function supervisorAlive(runDir: string, isAlive: (pid: number, pidStart: string | null) => boolean = defaultIsAlive): boolean | undefined {
  const supervisor = readSupervisorPid(runDir);
  return supervisor === undefined ? undefined : isAlive(supervisor.pid, supervisor.start);
}

/** Whether a pid is alive and, where its start time was recorded, still the same process (not a recycled pid). */
export function defaultIsAlive(pid: number, pidStart: string | null): boolean {
  if (!isProcessAlive(pid)) return false;
  if (pidStart === null) return true;
  const start = processStartTime(pid);
  // Where the start time cannot be read (not Linux), trust the pid alone.
  return start === undefined || start === pidStart;
}
