import { spawn as nodeSpawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { OutputStream, SuperviseParams } from "./supervise-process.js";

export interface TrainerExit {
  code: number | null;
  signal: string | null;
}

export interface SpawnedTrainer {
  pid: number;
  /** Resolves once the process has exited (or failed to start). */
  exit: Promise<void>;
  /** How it ended, once it has; undefined while it runs. */
  exited(): TrainerExit | undefined;
}

/**
 * Starts the trainer in its own process group (detached) with its stdout and stderr appended
 * straight to the run folder's log files, and waits until it exists. A trainer that cannot start
 * is E_WORKER_NOT_INSTALLED (no such command) or E_TRAINER_FAILED.
 */
export async function spawnTrainer(
  params: Pick<SuperviseParams, "command" | "args" | "cwd" | "env" | "spawn">,
  logs: Record<OutputStream, string>,
): Promise<SpawnedTrainer> {
  const outFd = openSync(logs.stdout, "a");
  const errFd = openSync(logs.stderr, "a");
  const spawn = params.spawn ?? nodeSpawn;
  let child: ChildProcess;
  try {
    child = spawn(params.command, params.args, {
      cwd: params.cwd,
      env: { PYTHONUNBUFFERED: "1", ...(params.env ?? process.env) },
      detached: true,
      stdio: ["ignore", outFd, errFd],
    });
  } finally {
    closeSync(outFd);
    closeSync(errFd);
  }
  let exited: TrainerExit | undefined;
  let spawnError: Error | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      resolve();
    });
    child.once("error", (error) => {
      spawnError = error;
      exited = { code: null, signal: null };
      resolve();
    });
  });
  await Promise.race([new Promise((r) => child.once("spawn", r)), exit]);
  if (spawnError || child.pid === undefined) {
    const missing = (spawnError as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
    throw new LoraspecError(
      missing ? "E_WORKER_NOT_INSTALLED" : "E_TRAINER_FAILED",
      `could not start ${params.command}: ${spawnError?.message ?? "no pid"}`,
      { hint: missing ? "install the trainer with `loraspec setup <trainer>`" : undefined, cause: spawnError },
    );
  }
  return { pid: child.pid, exit, exited: () => exited };
}
