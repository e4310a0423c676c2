import { readFileSync } from "node:fs";

/** True when a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return !isZombie(pid);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * The process start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined
 * where /proc is missing. Stored next to a pid so a recycled pid is not mistaken for our trainer.
 */
export function processStartTime(pid: number): string | undefined {
  const stat = readStat(pid);
  if (!stat) return undefined;
  // The command name (field 2) may contain spaces and parentheses: split after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[19];
}

function isZombie(pid: number): boolean {
  const stat = readStat(pid);
  if (!stat) return false;
  return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
}

function readStat(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
}
