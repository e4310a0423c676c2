import { spawn as nodeSpawn, type SpawnOptions, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { describeTrainerException, lastTrainerException } from "@loraspec/core/parse/trainer-exception.js";
import { processStartTime } from "./process-alive.js";
import { readLogTailLines } from "./trainer-log-tail.js";
import { stopProcessGroup, type StopStep } from "./stop-process-group.js";
import type { EventSource } from "./trainer-sample-watch.js";
import { FAILURE_PATTERNS, SUPERVISION_POLICY, nanHint, type StopTimeouts } from "./supervision-policy.js";

export type OutputStream = "stdout" | "stderr";

/** Turns one line of trainer output into events (a backend's parser; stateful parsers are fine). */
export type LineParser = (line: string, stream: OutputStream) => LoraspecEvent[];

export interface SuperviseParams {
  command: string;
  args: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** The run folder: stdout.log and stderr.log are written here by the trainer itself. */
  runDir: string;
  parseLine: LineParser;
  /** Abort = graceful stop of the whole process group (SIGINT, SIGTERM, SIGKILL). */
  signal?: AbortSignal;
  /** Called once the process exists, before any event: persist the pid here. */
  onSpawn?: (info: { pid: number; pidStart: string | null }) => void;
  /** Every raw line as read (for the last-log-line column and run.log). */
  onLine?: (line: string, stream: OutputStream) => void;
  stopTimeouts?: Partial<StopTimeouts>;
  nonFiniteLossLimit?: number;
  /** Stop the trainer (gracefully) once it has run this long: the contract's max_walltime_hours. */
  maxWalltimeMs?: number;
  pollMs?: number;
  /** The run's training precision (fp16/bf16/fp32): a NaN's hint depends on it. */
  precision?: string;
  spawn?: (command: string, args: string[], options: SpawnOptions) => ChildProcess;
  /** Polled beside the output at each turn (the trainer's sample folder, run/trainer-sample-watch.ts). */
  sources?: EventSource[];
}

export interface ProcessOutcome {
  exitCode: number | null;
  exitSignal: string | null;
  /** Why we stopped it, when we did. */
  stoppedFor?: "diverged" | "abort" | "walltime";
  stopSignal?: StopStep;
  /** The trainer's failure explained (OOM, NaN, missing file, crash), when it failed. */
  failure?: LoraspecError;
  /** The last lines it printed (both streams, in reading order). */
  lastLines: string[];
}

/**
 * Runs a trainer in its own process group and turns its output into events.
 * The trainer writes straight to files in the run folder (not pipes), so it keeps running if
 * loraspec dies and `loraspec logs -f` can follow it; we tail those files. Output is split on
 * both `\r` and `\n` because tqdm redraws its bar with `\r`. A run of non-finite losses stops
 * the trainer (sd-scripts would keep going and save a broken LoRA).
 */
export async function* superviseProcess(params: SuperviseParams): AsyncGenerator<LoraspecEvent, ProcessOutcome> {
  const pollMs = params.pollMs ?? SUPERVISION_POLICY.tailPollMs.value;
  const nanLimit = params.nonFiniteLossLimit ?? SUPERVISION_POLICY.nonFiniteLossLimit.value;
  mkdirSync(params.runDir, { recursive: true });
  const paths: Record<OutputStream, string> = {
    stdout: join(params.runDir, "stdout.log"),
    stderr: join(params.runDir, "stderr.log"),
  };
  const outFd = openSync(paths.stdout, "a");
  const errFd = openSync(paths.stderr, "a");
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
  let exited: { code: number | null; signal: string | null } | undefined;
  let spawnError: Error | undefined;
  const exitPromise = new Promise<void>((resolve) => {
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
  await Promise.race([new Promise((r) => child.once("spawn", r)), exitPromise]);
  if (spawnError || child.pid === undefined) {
    const missing = (spawnError as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
    throw new LoraspecError(
      missing ? "E_WORKER_NOT_INSTALLED" : "E_TRAINER_FAILED",
      `could not start ${params.command}: ${spawnError?.message ?? "no pid"}`,
      { hint: missing ? "install the trainer with `loraspec setup <trainer>`" : undefined, cause: spawnError },
    );
  }
  const pid = child.pid;
  params.onSpawn?.({ pid, pidStart: processStartTime(pid) ?? null });

  let stopping: Promise<StopStep | undefined> | undefined;
  let stoppedFor: ProcessOutcome["stoppedFor"];
  const stop = (reason: NonNullable<ProcessOutcome["stoppedFor"]>) => {
    if (stopping) return;
    stoppedFor = reason;
    stopping = stopProcessGroup({ pgid: pid, timeouts: params.stopTimeouts });
  };
  const onAbort = () => stop("abort");
  const walltime = params.maxWalltimeMs === undefined ? undefined : setTimeout(() => stop("walltime"), params.maxWalltimeMs);
  if (params.signal?.aborted) onAbort();
  else params.signal?.addEventListener("abort", onAbort, { once: true });

  const tails = {
    stdout: await openTail(paths.stdout),
    stderr: await openTail(paths.stderr),
  };
  const lastLines: string[] = [];
  const keep = SUPERVISION_POLICY.lastLinesKept.value;
  let nonFinite = 0;
  let lastLoss: { step: number; loss: number } | undefined;
  let divergedError: LoraspecError | undefined;
  const reported: LoraspecEvent[] = [];

  const handleLine = (line: string, stream: OutputStream): LoraspecEvent[] => {
    if (line.trim() === "") return [];
    lastLines.push(line);
    if (lastLines.length > keep) lastLines.shift();
    params.onLine?.(line, stream);
    const events = params.parseLine(line, stream);
    const out: LoraspecEvent[] = [];
    for (const event of events) {
      out.push(event);
      if (event.type === "error") reported.push(event);
      if (event.type !== "loss") continue;
      nonFinite = Number.isFinite(event.loss) ? 0 : nonFinite + 1;
      lastLoss = { step: event.step, loss: event.loss ?? Number.NaN };
      if (nonFinite >= nanLimit && !divergedError) {
        divergedError = new LoraspecError(
          "E_TRAIN_DIVERGED",
          `the loss was not finite for ${nonFinite} steps in a row (step ${event.step}); loraspec stopped the trainer so it cannot save a broken LoRA`,
          { hint: nanHint(params.precision), details: { step: event.step } },
        );
        out.push({ type: "error", code: divergedError.code, message: divergedError.message, hint: divergedError.hint, retryable: false });
        stop("diverged");
      }
    }
    return out;
  };

  try {
    for (;;) {
      const done = exited !== undefined;
      let got = false;
      for (const stream of ["stderr", "stdout"] as const) {
        const lines = await tails[stream].read(done);
        if (lines.length > 0) got = true;
        for (const line of lines) for (const event of handleLine(line, stream)) yield event;
      }
      for (const source of params.sources ?? []) {
        const events = await source.poll(done);
        if (events.length > 0) got = true;
        yield* events;
      }
      if (done && !got) break;
      if (!got) await Promise.race([sleep(pollMs), exitPromise]);
    }
  } finally {
    params.signal?.removeEventListener("abort", onAbort);
    if (walltime) clearTimeout(walltime);
    await tails.stdout.close();
    await tails.stderr.close();
  }
  // A run that ended on a non-finite loss saved a broken LoRA (sd-scripts does), however few steps it took.
  if (!divergedError && lastLoss && !Number.isFinite(lastLoss.loss) && stoppedFor !== "abort") {
    divergedError = new LoraspecError("E_TRAIN_DIVERGED", `the trainer ended with a non-finite loss (step ${lastLoss.step}); its LoRA is not usable`, {
      hint: nanHint(params.precision),
      details: { step: lastLoss.step },
    });
  }
  const stopSignal = stopping ? await stopping : undefined;
  const outcome: ProcessOutcome = {
    exitCode: exited!.code,
    exitSignal: exited!.signal,
    stoppedFor,
    stopSignal,
    lastLines,
  };
  if (divergedError) outcome.failure = divergedError;
  else if (stoppedFor === "walltime") {
    outcome.failure = new LoraspecError("E_TIMEOUT", `the trainer ran past limits.max_walltime_hours (${((params.maxWalltimeMs ?? 0) / 3_600_000).toFixed(2)} h) and was stopped`, {
      field: "limits.max_walltime_hours",
      hint: "raise limits.max_walltime_hours or lower the steps; the last checkpoint is kept, so `loraspec train --resume <id>` continues",
      retryable: false,
    });
  }
  else if (stoppedFor !== "abort" && (exited!.code !== 0 || exited!.signal)) {
    outcome.failure = classifyFailure({ lastLines, exitCode: exited!.code, exitSignal: exited!.signal, reported, precision: params.precision, stderrLog: paths.stderr, stderrTail: readLogTailLines(paths.stderr) });
  }
  return outcome;
}

/** Explains a failed trainer from its output: the first known pattern wins, else a plain crash. */
export function classifyFailure(params: {
  lastLines: string[];
  exitCode: number | null;
  exitSignal: string | null;
  reported?: LoraspecEvent[];
  /** The trainer's stderr log and its tail: its own last exception goes into the message, with the path. */
  stderrLog?: string;
  stderrTail?: string[];
  precision?: string;
}): LoraspecError {
  const tail = params.lastLines.slice(-10).join("\n");
  const how = params.exitSignal ? `was killed by ${params.exitSignal}` : `exited with code ${params.exitCode}`;
  // The worker reports its own coded error; trust it over text patterns.
  const reported = params.reported?.find((e): e is Extract<LoraspecEvent, { type: "error" }> => e.type === "error");
  if (reported && isKnownCode(reported.code)) {
    return new LoraspecError(reported.code, reported.message, { hint: reported.hint, details: { exitCode: params.exitCode, lastLines: params.lastLines } });
  }
  for (const pattern of FAILURE_PATTERNS) {
    const line = [...params.lastLines].reverse().find((l) => pattern.pattern.test(l));
    if (!line) continue;
    return new LoraspecError(pattern.code, `the trainer ${how}: ${pattern.message} (${line.trim().slice(0, 300)})`, {
      hint: pattern.id === "nan-loss" ? nanHint(params.precision) : pattern.hint,
      details: { exitCode: params.exitCode, exitSignal: params.exitSignal, pattern: pattern.id, lastLines: params.lastLines },
    });
  }
  // The trainer's own exception (not accelerate's CalledProcessError around it), with the log path.
  const own = lastTrainerException(params.stderrTail ?? params.lastLines);
  const log = params.stderrLog ? ` (full log: ${params.stderrLog})` : "";
  return new LoraspecError("E_TRAINER_FAILED", own ? `the trainer ${how}: ${describeTrainerException(own)}${log}` : `the trainer ${how}${log}; its last lines:\n${tail}`, {
    file: params.stderrLog,
    hint: "read the full log with `loraspec logs <id>`; fix the cause and resume with `loraspec train --resume <id>`",
    details: { exitCode: params.exitCode, exitSignal: params.exitSignal, lastLines: params.lastLines, ...(own ? { exception: own } : {}) },
  });
}

const KNOWN_WORKER_CODES = new Set(["E_OUT_OF_MEMORY", "E_TRAIN_DIVERGED", "E_FILE_NOT_FOUND", "E_DATASET_EMPTY", "E_DATASET_NOT_FOUND", "E_NOT_SUPPORTED", "E_WORKER_PROTOCOL", "E_TRAINER_FAILED", "E_IMAGE_UNREADABLE", "E_CONTRACT_INVALID"]);
function isKnownCode(code: string): code is "E_OUT_OF_MEMORY" {
  return KNOWN_WORKER_CODES.has(code);
}

interface Tail {
  read(final: boolean): Promise<string[]>;
  close(): Promise<void>;
}

/** Reads what was appended to a file since the last call, split into lines on \r and \n. */
async function openTail(path: string): Promise<Tail> {
  const handle: FileHandle = await open(path, "r");
  // Start at the current end: on a resume the file already holds the earlier attempt's output.
  let offset = (await handle.stat()).size;
  const decoder = new TextDecoder();
  let partial = "";
  const buffer = Buffer.alloc(64 * 1024);
  return {
    async read(final) {
      let text = "";
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        text += decoder.decode(buffer.subarray(0, bytesRead), { stream: true });
      }
      if (final) text += decoder.decode();
      const parts = (partial + text).split(/\r\n|\r|\n/);
      partial = parts.pop() ?? "";
      if (final && partial !== "") {
        parts.push(partial);
        partial = "";
      }
      return parts;
    },
    close: () => handle.close(),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
