import { SUPERVISION_POLICY, type StopTimeouts } from "./supervision-policy.js";

export type StopStep = "SIGINT" | "SIGTERM" | "SIGKILL";

/** True while any process of the group led by `pgid` exists. */
export function isGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Stops a trainer's whole process group (accelerate launch starts children): SIGINT so it can
 * finish a save, then SIGTERM, then SIGKILL, each after a timeout. Returns the last signal sent.
 * Works from any process (`loraspec stop` in another terminal), since it only needs the pgid.
 */
export async function stopProcessGroup(params: {
  pgid: number;
  timeouts?: Partial<StopTimeouts>;
  onStep?: (step: StopStep) => void;
  pollMs?: number;
}): Promise<StopStep | undefined> {
  const { pgid } = params;
  const timeouts = { ...SUPERVISION_POLICY.stopTimeouts.value, ...params.timeouts };
  const pollMs = params.pollMs ?? 50;
  if (!isGroupAlive(pgid)) return undefined;
  const steps: [StopStep, number][] = [
    ["SIGINT", timeouts.interruptMs],
    ["SIGTERM", timeouts.terminateMs],
    ["SIGKILL", 5_000],
  ];
  let last: StopStep | undefined;
  for (const [signal, waitMs] of steps) {
    try {
      process.kill(-pgid, signal);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ESRCH") return last;
      throw error;
    }
    last = signal;
    params.onStep?.(signal);
    const until = Date.now() + waitMs;
    while (Date.now() < until) {
      if (!isGroupAlive(pgid)) return last;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
  return last;
}
