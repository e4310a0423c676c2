import { setTimeout as delay } from "node:timers/promises";
import type { SpawnOptions, ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { LoraspecError, SYMPTOM_CODES, workerErrorCode } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { describeTrainerException, lastTrainerException } from "@loraspec/core/parse/trainer-exception.js";
import { processStartTime } from "./process-alive.js";
import { spawnTrainer, type SpawnedTrainer, type TrainerExit } from "./spawn-trainer.js";
import { readLogTailLines } from "./trainer-log-tail.js";
import { TrainerLines, openTail, type Tail } from "./trainer-lines.js";
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
  const trainer = await spawnTrainer(params, paths);
  params.onSpawn?.({ pid: trainer.pid, pidStart: processStartTime(trainer.pid) ?? null });

  const stops = armStops(trainer.pid, params);
  const tails = {
    stdout: await openTail(paths.stdout),
    stderr: await openTail(paths.stderr),
  };
  const lines = new TrainerLines({ parseLine: params.parseLine, onLine: params.onLine, nanLimit, precision: params.precision }, () => stops.stop("diverged"));
  try {
    yield* relayOutput(trainer, tails, lines, params.sources ?? [], pollMs);
  } finally {
    stops.disarm();
    await tails.stdout.close();
    await tails.stderr.close();
  }
  // A run that ended on a non-finite loss saved a broken LoRA (sd-scripts does), however few steps it took.
  const divergedError = lines.divergedError ?? divergedAtEnd(lines.lastLoss, stops.stoppedFor(), params.precision);
  const stopping = stops.stopping();
  const stopSignal = stopping ? await stopping : undefined;
  const exited = trainer.exited()!;
  const stoppedFor = stops.stoppedFor();
  const outcome: ProcessOutcome = {
    exitCode: exited.code,
    exitSignal: exited.signal,
    stoppedFor,
    stopSignal,
    lastLines: lines.lastLines,
  };
  const failure = divergedError ?? stopFailure(stoppedFor, params.maxWalltimeMs) ?? exitFailure(exited, stoppedFor, lines, params.precision, paths.stderr);
  if (failure) outcome.failure = failure;
  return outcome;
}

interface Stops {
  /** Stops the process group gracefully, once; the first reason is the one kept. */
  stop(reason: NonNullable<ProcessOutcome["stoppedFor"]>): void;
  stoppedFor(): ProcessOutcome["stoppedFor"];
  /** The stop under way (it resolves to the last signal it needed); undefined when nothing stopped the trainer. */
  stopping(): Promise<StopStep | undefined> | undefined;
  /** Removes the abort listener and the walltime timer. */
  disarm(): void;
}

/** Stops the trainer on the caller's abort and at the walltime limit (and on demand: a divergence). */
function armStops(pid: number, params: Pick<SuperviseParams, "signal" | "maxWalltimeMs" | "stopTimeouts">): Stops {
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
  return {
    stop,
    stoppedFor: () => stoppedFor,
    stopping: () => stopping,
    disarm() {
      params.signal?.removeEventListener("abort", onAbort);
      if (walltime) clearTimeout(walltime);
    },
  };
}

/**
 * Yields the events of both logs (stderr first) and of the extra sources at each turn, sleeping
 * when nothing came, until the trainer has exited and a last read found nothing more.
 */
async function* relayOutput(trainer: SpawnedTrainer, tails: Record<OutputStream, Tail>, lines: TrainerLines, sources: EventSource[], pollMs: number): AsyncGenerator<LoraspecEvent, void> {
  for (;;) {
    const done = trainer.exited() !== undefined;
    let got = false;
    for (const stream of ["stderr", "stdout"] as const) {
      const read = await tails[stream].read(done);
      if (read.length > 0) got = true;
      for (const line of read) for (const event of lines.handle(line, stream)) yield event;
    }
    for (const source of sources) {
      const events = await source.poll(done);
      if (events.length > 0) got = true;
      yield* events;
    }
    if (done && !got) break;
    if (!got) await Promise.race([delay(pollMs), trainer.exit]);
  }
}

/** E_TRAIN_DIVERGED when the last loss was not finite (unless the user stopped the run). */
function divergedAtEnd(lastLoss: TrainerLines["lastLoss"], stoppedFor: ProcessOutcome["stoppedFor"], precision: string | undefined): LoraspecError | undefined {
  if (!lastLoss || Number.isFinite(lastLoss.loss) || stoppedFor === "abort") return undefined;
  return new LoraspecError("E_TRAIN_DIVERGED", `the trainer ended with a non-finite loss (step ${lastLoss.step}); its LoRA is not usable`, {
    hint: nanHint(precision),
    details: { step: lastLoss.step },
  });
}

/** E_TIMEOUT when the walltime limit stopped the trainer. */
function stopFailure(stoppedFor: ProcessOutcome["stoppedFor"], maxWalltimeMs: number | undefined): LoraspecError | undefined {
  if (stoppedFor !== "walltime") return undefined;
  return new LoraspecError("E_TIMEOUT", `the trainer ran past limits.max_walltime_hours (${((maxWalltimeMs ?? 0) / 3_600_000).toFixed(2)} h) and was stopped`, {
    field: "limits.max_walltime_hours",
    hint: "raise limits.max_walltime_hours or lower the steps; the last checkpoint is kept, so `loraspec train --resume <id>` continues",
    retryable: false,
  });
}

/** The trainer's failure explained when it exited non-zero or on a signal that was not our abort. */
function exitFailure(exited: TrainerExit, stoppedFor: ProcessOutcome["stoppedFor"], lines: TrainerLines, precision: string | undefined, stderrLog: string): LoraspecError | undefined {
  if (stoppedFor === "abort" || (exited.code === 0 && !exited.signal)) return undefined;
  return classifyFailure({ lastLines: lines.lastLines, exitCode: exited.code, exitSignal: exited.signal, reported: lines.reported, precision, stderrLog, stderrTail: readLogTailLines(stderrLog) });
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
  const code = workerErrorCode(reported?.code);
  if (reported && code && !SYMPTOM_CODES.has(code)) {
    return new LoraspecError(code, reported.message, { hint: reported.hint, details: { exitCode: params.exitCode, lastLines: params.lastLines } });
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
