import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { LoraspecError, workerErrorCode } from "@loraspec/core/errors.js";
import { parseEvent, type LoraspecEvent } from "@loraspec/core/events.js";
import { workerLayout, type WorkerLayout } from "./worker-paths.js";

export type SpawnFn = (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

export interface RunWorkerParams {
  /** A worker command: "train", "sample", "make-tiny-base", "score", ... */
  command: string;
  /** JSON-serialisable request; sent on stdin. */
  request: unknown;
  signal?: AbortSignal;
  /** The Python to run; default: the worker venv's (worker/.venv/bin/python) or $LORASPEC_WORKER_PYTHON. */
  python?: string;
  /** Working directory for the worker (relative paths in the request resolve against it); default process.cwd(). */
  cwd?: string;
  /** stderr (the worker's human log) is appended here when given. */
  logFile?: string;
  env?: Record<string, string>;
  spawn?: SpawnFn;
  /** Cancel escalation: SIGINT, then SIGTERM after `termMs`, then SIGKILL after `killMs` more. */
  termMs?: number;
  killMs?: number;
}

// Why these waits: SIGINT lets a training step finish and the worker exit cleanly (a few seconds
// on a big model); SIGTERM is the second ask; SIGKILL is for a worker stuck in native code.
const DEFAULT_TERM_MS = 10_000;
const DEFAULT_KILL_MS = 5_000;
const STDERR_TAIL_LINES = 30;

/**
 * Runs `python -u -m loraspec_worker <command> -` with the request on stdin and yields the
 * worker's JSON-lines events. The worker's own `error` event is not yielded: it ends the stream
 * as a thrown LoraspecError with the worker's code. A worker that dies without one becomes
 * E_WORKER_CRASHED carrying the last stderr lines; aborting `signal` ends with E_CANCELLED.
 */
export async function* runWorker(params: RunWorkerParams): AsyncGenerator<LoraspecEvent> {
  const layout = workerLayout();
  const python = params.python ?? layout.python;
  if (params.python === undefined && !existsSync(python)) {
    throw notInstalled(python);
  }
  if (params.signal?.aborted) throw new LoraspecError("E_CANCELLED", "cancelled before the worker started");

  const child = spawnWorker(params, python, layout);
  const exited = new Promise<WorkerExit>((resolve) => {
    child.once("error", (error) => resolve({ code: null, signal: null, spawnError: error }));
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  const stderr = captureStderr(child, params.logFile);
  const cancel = armCancel(child, params);

  child.stdin?.on("error", () => {}); // a worker that dies early closes stdin; the exit code tells the story
  child.stdin?.end(JSON.stringify(params.request ?? {}));

  const stream: WorkerStream = { sawDone: false };
  try {
    if (child.stdout) yield* relayEvents(child.stdout, stream);
    const exit = await exited;
    stderr.flush();
    const failure = workerFailure({ params, python, exit, stream, cancelled: cancel.cancelled(), tail: stderr.tail });
    if (failure) throw failure;
  } finally {
    cancel.disarm();
    // A consumer that stops early (break) must not leave a worker running.
    stopIfRunning(child, exited, params.killMs ?? DEFAULT_KILL_MS);
    await stderr.close();
  }
}

interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  spawnError?: Error;
}

/** What the worker's stdout said beyond the events it yielded. */
interface WorkerStream {
  workerError?: Extract<LoraspecEvent, { type: "error" }>;
  sawDone: boolean;
}

/** Starts the worker process with the worker package on PYTHONPATH and unbuffered output. */
function spawnWorker(params: RunWorkerParams, python: string, layout: WorkerLayout): ChildProcess {
  const spawn = params.spawn ?? (nodeSpawn as SpawnFn);
  // In a checkout the package resolves from the repository even when it was not pip-installed;
  // an npm install's venv holds the worker wheel.
  const pythonPath = [layout.kind === "checkout" ? join(layout.root, "worker") : undefined, process.env.PYTHONPATH].filter(Boolean).join(":");
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...params.env,
    PYTHONUNBUFFERED: "1",
    ...(pythonPath ? { PYTHONPATH: pythonPath } : {}),
  };
  return spawn(python, ["-u", "-m", "loraspec_worker", params.command, "-"], {
    cwd: params.cwd ?? process.cwd(),
    env,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/**
 * stderr: to the log file, and the last lines kept for crash reports. `flush` keeps an unfinished
 * last line once the worker has exited; `close` ends the log file.
 */
function captureStderr(child: ChildProcess, logFile: string | undefined) {
  const tail: string[] = [];
  let log: WriteStream | undefined;
  if (logFile) {
    mkdirSync(dirname(logFile), { recursive: true });
    log = createWriteStream(logFile, { flags: "a" });
  }
  child.stderr?.setEncoding("utf8");
  let partial = "";
  child.stderr?.on("data", (chunk: string) => {
    log?.write(chunk);
    const lines = (partial + chunk).split(/\r?\n|\r/);
    partial = lines.pop() ?? "";
    for (const line of lines) if (line.trim()) pushTail(tail, line);
  });
  return {
    tail,
    flush: () => {
      if (partial.trim()) pushTail(tail, partial);
    },
    close: () => new Promise<void>((resolve) => (log ? log.end(() => resolve()) : resolve())),
  };
}

/** Cancellation: SIGINT -> SIGTERM -> SIGKILL once `signal` aborts; `disarm` drops the listener and the timers. */
function armCancel(child: ChildProcess, params: RunWorkerParams) {
  let cancelled = false;
  const timers: NodeJS.Timeout[] = [];
  const onAbort = () => {
    cancelled = true;
    child.kill("SIGINT");
    timers.push(
      setTimeout(() => {
        child.kill("SIGTERM");
        timers.push(setTimeout(() => child.kill("SIGKILL"), params.killMs ?? DEFAULT_KILL_MS));
      }, params.termMs ?? DEFAULT_TERM_MS),
    );
  };
  params.signal?.addEventListener("abort", onAbort, { once: true });
  return {
    cancelled: () => cancelled,
    disarm: () => {
      params.signal?.removeEventListener("abort", onAbort);
      for (const timer of timers) clearTimeout(timer);
    },
  };
}

/**
 * Yields the events on the worker's stdout; a line that is not an event becomes a debug log. The
 * worker's `error` event and whether a `done` came are kept in `stream` instead.
 */
async function* relayEvents(stdout: Readable, stream: WorkerStream): AsyncGenerator<LoraspecEvent> {
  const lines = createInterface({ input: stdout, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      yield { type: "log", level: "debug", message: line };
      continue;
    }
    const event = parseEvent(parsed);
    if (!event) {
      yield { type: "log", level: "debug", message: line };
      continue;
    }
    if (event.type === "error") {
      stream.workerError = event;
      continue;
    }
    if (event.type === "done") stream.sawDone = true;
    yield event;
  }
}

/**
 * The error a finished worker ends with, if any, first match wins: it could not start, it was
 * cancelled, it reported an error, it crashed, or it exited without a `done` event.
 */
function workerFailure(o: {
  params: RunWorkerParams;
  python: string;
  exit: WorkerExit;
  stream: WorkerStream;
  cancelled: boolean;
  tail: string[];
}): LoraspecError | undefined {
  const { params, exit, tail } = o;
  const workerError = o.stream.workerError;
  if (exit.spawnError) {
    const code = (exit.spawnError as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "EACCES") return notInstalled(o.python);
    return new LoraspecError("E_WORKER_CRASHED", `could not start the worker: ${exit.spawnError.message}`, {
      cause: exit.spawnError,
    });
  }
  if (o.cancelled) {
    return new LoraspecError("E_CANCELLED", `worker '${params.command}' cancelled`, { details: { stderrTail: tail } });
  }
  if (workerError) {
    const code = workerErrorCode(workerError.code) ?? "E_TRAINER_FAILED";
    return new LoraspecError(code, workerError.message, {
      hint: workerError.hint,
      retryable: workerError.retryable,
      details: { workerCode: workerError.code, exitCode: exit.code, stderrTail: tail },
    });
  }
  if (exit.code !== 0 || exit.signal) {
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    return new LoraspecError(
      "E_WORKER_CRASHED",
      `worker '${params.command}' ${how}${tail.length ? `; last stderr lines:\n${tail.slice(-10).join("\n")}` : ""}`,
      {
        hint: params.logFile ? `full log: ${params.logFile}` : "run again with a log file to see the whole stderr",
        details: { exitCode: exit.code, signal: exit.signal, stderrTail: tail },
      },
    );
  }
  if (!o.stream.sawDone) {
    return new LoraspecError("E_WORKER_PROTOCOL", `worker '${params.command}' exited without a done event`, {
      details: { stderrTail: tail },
    });
  }
  return undefined;
}

/** SIGTERM to a worker still running, SIGKILL `killMs` later unless it exits first. */
function stopIfRunning(child: ChildProcess, exited: Promise<WorkerExit>, killMs: number): void {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), killMs);
    killer.unref();
    void exited.then(() => clearTimeout(killer));
  }
}

function pushTail(tail: string[], line: string): void {
  tail.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
  if (tail.length > STDERR_TAIL_LINES) tail.shift();
}

function notInstalled(python: string): LoraspecError {
  return new LoraspecError("E_WORKER_NOT_INSTALLED", `the Python worker is not installed (no ${python})`, {
    hint: "run `loraspec setup worker` (or `npm run setup:worker` in a checkout)",
  });
}
