import { appendFileSync, existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { LoraspecError, isLoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { atomicWrite } from "../fs/atomic-write.js";
import type { FalRunner } from "../fal/create-fal-runner.js";
import { processStartTime } from "./process-alive.js";
import { openRunStore, type RunRecord, type RunStore } from "./run-store.js";
import { superviseProcess, type ProcessOutcome } from "./supervise-process.js";
import { watchTrainerSamples } from "./trainer-sample-watch.js";
import { SUPERVISION_POLICY, type StopTimeouts } from "./supervision-policy.js";
import { parserFor, type ProcessJob, type TextParsers, type TrainJob } from "./train-job.js";
import { diskFullAfterFailure, ioError } from "./io-errors.js";
import { runFal } from "./run-fal.js";
import { throttledProgress } from "./run-progress.js";
import { recordPreviousAttempt } from "./run-duration.js";
import { falJobUnderway, recompileForResume } from "./resume-changes.js";
import { prepareResume } from "./prepare-resume.js";
import { readRunJsonSync } from "./run-files.js";

export { newestKohyaState } from "./prepare-resume.js";
import { ATTEMPT_FILE, type AttemptMark } from "./judge-from-disk.js";
import { verifyLoraOutput } from "./verify-lora-output.js";
import { convertRunOutput } from "./output-format.js";
import { runErrorHint } from "./run-error-hint.js";

/** Files of a run folder (DESIGN.md "State"). */
export const RUN_FILES = {
  plan: "plan.json",
  job: "job.json",
  events: "events.jsonl",
  log: "run.log",
  stopRequested: "stop-requested",
  pid: "trainer.pid",
  supervisorPid: "supervisor.pid",
} as const;

export interface RunCommon {
  projectDir: string;
  /** Aborting detaches (fal) or stops the trainer gracefully (local); the run becomes interrupted. */
  signal?: AbortSignal;
  /** Parsers for sd-scripts / ai-toolkit output (from the core). */
  textParsers?: TextParsers;
  /** Needed for fal jobs. */
  falRunner?: FalRunner;
  /** Accept a cost over limits.max_cost_usd (fal). */
  yes?: boolean;
  /** Submit a fal job whose limits.max_cost_usd no price can check (train --accept-unpriced; --yes does not). */
  acceptUnpriced?: boolean;
  stopTimeouts?: Partial<StopTimeouts>;
  pollMs?: number;
  /** An already-open store (the server keeps one); otherwise one is opened and closed here. */
  store?: RunStore;
}

export interface StartRunParams extends RunCommon {
  /** The job, or a function that builds it once the run (and its folder) exists. */
  job: TrainJob | ((run: RunRecord) => TrainJob | Promise<TrainJob>);
  /** The trainer's name for the runs table (default: the job's). */
  trainer?: string;
  /** The plan as the core computed it; saved as plan.json. */
  plan?: unknown;
  name?: string;
  base?: string;
  contractPath?: string;
  /** Called with the new run's id before anything runs (print it so the user can `logs -f`). */
  onCreated?: (run: RunRecord) => void;
  /**
   * After an out-of-memory failure: the job to try next (the contract's next OOM fallback), or
   * undefined to fail. The run resumes from its last checkpoint with the new job.
   */
  onOutOfMemory?: (attempt: number) => Promise<{ job: (run: RunRecord) => TrainJob | Promise<TrainJob>; note: string } | undefined>;
}

export interface ResumeRunParams extends RunCommon {
  runId: string;
  /** fal: submit again although an earlier submit's outcome is unknown. */
  resubmit?: boolean;
  /**
   * Recompiles the run from the contract as it is now (the fix an error asked for): the plan and
   * the job factory. The changes against the run's original plan are shown, recorded in
   * `resume-changes.jsonl`, and refused where a resumed run cannot take them (base, rank, targets).
   * Without it the run resumes with the job written at its start.
   */
  recompile?: (run: RunRecord) => Promise<{ plan: unknown; job: (run: RunRecord) => TrainJob | Promise<TrainJob>; contractFile?: string }>;
}

/** Creates a run (row + folder with plan.json, job.json, compiled files) and runs it. */
export async function* startRun(params: StartRunParams): AsyncGenerator<LoraspecEvent, RunRecord> {
  const store = params.store ?? openRunStore({ projectDir: params.projectDir });
  try {
    store.reconcile();
    const given = typeof params.job === "function" ? undefined : params.job;
    const run = store.create({
      name: params.name,
      trainer: params.trainer ?? given?.trainer ?? "unknown",
      base: params.base,
      contractPath: params.contractPath,
      totalSteps: given?.totalSteps,
    });
    mkdirSync(run.runDir, { recursive: true });
    params.onCreated?.(run);
    if (params.plan !== undefined) await atomicWrite(join(run.runDir, RUN_FILES.plan), `${JSON.stringify(params.plan, null, 2)}\n`);
    let job = await prepareJob(store, run, params.job);
    let resuming = false;
    for (let attempt = 1; ; attempt++) {
      try {
        return yield* execute({ ...params, store, run: store.get(run.id), job, resuming });
      } catch (error) {
        if (!(isLoraspecError(error) && error.code === "E_OUT_OF_MEMORY" && params.onOutOfMemory)) throw error;
        const next = await params.onOutOfMemory(attempt);
        if (!next) throw error;
        const warning: LoraspecEvent = { type: "warning", code: "OOM_FALLBACK", message: `out of memory: retrying with ${next.note}` };
        appendFileSync(join(run.runDir, RUN_FILES.events), `${JSON.stringify(warning)}\n`);
        yield warning;
        job = await prepareJob(store, store.get(run.id), next.job);
        resuming = true;
      }
    }
  } finally {
    if (!params.store) store.close();
  }
}

/** Builds the job (when given as a function) and writes job.json and the compiled files. */
async function prepareJob(store: RunStore, run: RunRecord, given: StartRunParams["job"]): Promise<TrainJob> {
  try {
    const job = typeof given === "function" ? await given(run) : given;
    await atomicWrite(join(run.runDir, RUN_FILES.job), `${JSON.stringify(job, null, 2)}\n`);
    if (job.kind === "process") {
      for (const [name, content] of Object.entries(job.files ?? {})) await atomicWrite(join(run.runDir, name), content);
    }
    if (job.totalSteps !== undefined) store.update(run.id, { totalSteps: job.totalSteps });
    return job;
  } catch (error) {
    const mapped = ioError(error, { path: run.runDir }) ?? error;
    const coded = isLoraspecError(mapped) ? mapped : new LoraspecError("E_INTERNAL", String((mapped as Error).message ?? mapped), { cause: mapped });
    if (run.state === "queued" || run.state === "starting" || run.state === "running") {
      try {
        store.transition(run.id, "failed", { errorCode: coded.code, errorMessage: coded.message });
      } catch (unrecorded) {
        if (!ioError(unrecorded)) throw unrecorded;
      }
    }
    throw mapped;
  }
}

/** Runs an interrupted, failed or cancelled run again from where it stopped. */
export async function* resumeRun(params: ResumeRunParams): AsyncGenerator<LoraspecEvent, RunRecord> {
  const store = params.store ?? openRunStore({ projectDir: params.projectDir });
  try {
    store.reconcile();
    const run = store.get(params.runId);
    if (run.state === "running" || run.state === "starting") {
      throw new LoraspecError("E_RUN_STATE", `run ${run.id} is still ${run.state} (pid ${run.pid})`, {
        hint: `follow it with \`loraspec logs ${run.id} -f\`, or stop it with \`loraspec stop ${run.id}\``,
      });
    }
    // Bounded: a job.json too large to be one is E_FILE_TOO_LARGE naming it (run-files.ts).
    let job = readRunJsonSync(join(run.runDir, RUN_FILES.job)) as TrainJob | undefined;
    if (!job) throw new LoraspecError("E_RUN_STATE", `run ${run.id} has no readable ${RUN_FILES.job}; it cannot be resumed`);
    if (params.recompile && !falJobUnderway(run, job)) {
      const next = yield* recompileForResume(run, job, params.recompile);
      job = await prepareJob(store, run, next);
    }
    return yield* execute({ ...params, store, run: store.get(run.id), job, resuming: true });
  } finally {
    if (!params.store) store.close();
  }
}

export interface ExecuteParams extends RunCommon {
  store: RunStore;
  run: RunRecord;
  job: TrainJob;
  resuming: boolean;
  resubmit?: boolean;
}

async function* execute(params: ExecuteParams): AsyncGenerator<LoraspecEvent, RunRecord> {
  const { store, run, job } = params;
  const eventsFile = join(run.runDir, RUN_FILES.events);
  const stopMarker = join(run.runDir, RUN_FILES.stopRequested);
  await rm(stopMarker, { force: true });
  // This process supervises the run: reconcile leaves the run alone while it lives (the trainer
  // may have exited a moment before we record the end), and `logs -f` reads run.log it writes.
  writeFileSync(join(run.runDir, RUN_FILES.supervisorPid), `${process.pid} ${processStartTime(process.pid) ?? ""}\n`);
  recordPreviousAttempt(store.get(run.id));
  store.transition(run.id, "starting");
  const record = (event: LoraspecEvent) => appendFileSync(eventsFile, `${JSON.stringify(event)}\n`);
  const progress = throttledProgress(store, run.id);
  const emit = function* (event: LoraspecEvent): Generator<LoraspecEvent> {
    record(event);
    progress.onEvent(event);
    yield event;
  };
  yield* emit({ type: "phase", name: params.resuming ? "resume" : "start", message: `run ${run.id} (${job.trainer})` });
  if (job.kind === "process") for (const w of job.warnings ?? []) yield* emit({ type: "warning", code: w.code, message: w.message });
  try {
    const outcome = job.kind === "fal" ? yield* runFal(params, job, emit, join(run.runDir, RUN_FILES.log)) : yield* runProcess(params, job, emit, stopMarker);
    progress.flush();
    const final = store.get(run.id);
    if (outcome.state === "succeeded") {
      const done = store.transition(run.id, "succeeded", { outputPath: outcome.output, step: final.totalSteps ?? final.step });
      const result: Record<string, unknown> = { runId: run.id, state: "succeeded", lora: outcome.output, runDir: run.runDir };
      if (outcome.trainerResult) result.trainer = outcome.trainerResult;
      yield* emit({ type: "done", result });
      return done;
    }
    if (outcome.state === "cancelled" || outcome.state === "interrupted") {
      // `loraspec stop` may have recorded the end already.
      if (final.state === "running" || final.state === "starting") {
        store.transition(run.id, outcome.state, { errorCode: "E_CANCELLED", errorMessage: outcome.message });
      }
      throw new LoraspecError("E_CANCELLED", `run ${run.id} ${outcome.state}: ${outcome.message}`, {
        hint: `resume it with \`loraspec train --resume ${run.id}\``,
      });
    }
    throw (outcome as Extract<Outcome, { state: "failed" }>).error;
  } catch (raw) {
    // A full disk anywhere (events.jsonl, the store, a checkpoint) is a coded error, never a stack.
    const error = ioError(raw, { path: run.runDir }) ?? raw;
    const coded = isLoraspecError(error) ? error : new LoraspecError("E_INTERNAL", (error as Error).message ?? String(error), { cause: error });
    try {
      progress.flush();
      const current = store.get(run.id);
      if (current.state === "starting" || current.state === "running") {
        // A submit with an unknown outcome is not a failure: `--resume` looks the job up and goes on.
        store.transition(run.id, coded.code === "E_SUBMIT_UNKNOWN" ? "interrupted" : "failed", { errorCode: coded.code, errorMessage: coded.message });
        record({ type: "error", code: coded.code, message: coded.message, hint: coded.hint, retryable: coded.retryable });
      }
    } catch (unrecorded) {
      // The store or the folder is on the full disk too: the run stays as it was until the next
      // command reconciles it from the trainer's files; the user still gets the coded error.
      if (!ioError(unrecorded)) throw unrecorded;
    }
    if (isLoraspecError(error) && error.code !== "E_CANCELLED" && !error.hint?.includes(run.id)) {
      throw new LoraspecError(error.code, error.message, {
        hint: runErrorHint(error.hint, run.id),
        file: error.file,
        field: error.field,
        details: error.details,
        retryable: error.retryable,
        cause: error,
      });
    }
    throw error;
  }
}

export type Outcome =
  /** `output` is null on a follower host of a multi-host run: node 0 writes the LoRA. */
  | { state: "succeeded"; output: string | null; trainerResult?: Record<string, unknown> }
  | { state: "cancelled" | "interrupted"; message: string }
  | { state: "failed"; error: LoraspecError };

export type Emit = (event: LoraspecEvent) => Generator<LoraspecEvent>;

async function* runProcess(params: ExecuteParams, job: ProcessJob, emit: Emit, stopMarker: string): AsyncGenerator<LoraspecEvent, Outcome> {
  const { store, run } = params;
  const args = [...job.args];
  if (params.resuming) {
    const note = await prepareResume(job, args);
    if (note) yield* emit({ type: "log", level: "info", message: note });
  }
  const parseLine = parserFor(job.parser, params.textParsers);
  const logFile = join(run.runDir, RUN_FILES.log);
  // Where this attempt begins in the trainer's own files: reconciliation reads its final line from here.
  const mark: AttemptMark = { attempt: store.get(run.id).attempts, startedAt: new Date().toISOString(), stdoutOffset: fileSize(join(run.runDir, "stdout.log")) };
  await atomicWrite(join(run.runDir, ATTEMPT_FILE), `${JSON.stringify(mark)}\n`);
  let workerDone: Record<string, unknown> | undefined;
  // Kohya's and ai-toolkit's own sample images become `sample` events (the built-in worker emits its own).
  const sources = job.samples ? [await watchTrainerSamples(job.samples)] : [];
  const gen = superviseProcess({
    sources,
    command: job.command,
    args,
    cwd: job.cwd,
    env: { ...process.env, ...job.env },
    runDir: run.runDir,
    parseLine,
    signal: params.signal,
    stopTimeouts: params.stopTimeouts,
    pollMs: params.pollMs,
    precision: job.precision,
    maxWalltimeMs: job.maxWalltimeHours === undefined ? undefined : job.maxWalltimeHours * 3_600_000,
    onSpawn: ({ pid, pidStart }) => {
      store.transition(run.id, "running", { pid, pidStart });
      // The pid file is for people and other tools; the store is what loraspec reads.
      writeFileSync(join(run.runDir, RUN_FILES.pid), `${pid}\n`);
    },
    onLine: (line) => appendFileSync(logFile, `${line}\n`),
  });
  let next: IteratorResult<LoraspecEvent, ProcessOutcome>;
  try {
    next = await gen.next();
  } catch (error) {
    if (isLoraspecError(error) && error.code === "E_WORKER_NOT_INSTALLED") {
      const setup = job.trainer === "diffusers" ? "loraspec setup worker" : `loraspec setup ${job.trainer}`;
      throw new LoraspecError(error.code, error.message, { hint: `install it with \`${setup}\``, cause: error });
    }
    throw error;
  }
  while (!next.done) {
    const event = next.value;
    // The worker's own `done` is folded into ours (one done per run); its `error` becomes the
    // run's thrown error (printed once, with its fix), so here it only goes to events.jsonl.
    if (event.type === "done") workerDone = event.result;
    else if (event.type === "error") appendFileSync(join(run.runDir, RUN_FILES.events), `${JSON.stringify(event)}\n`);
    else yield* emit(event);
    next = await gen.next();
  }
  const outcome: ProcessOutcome = next.value;
  store.update(run.id, { exitCode: outcome.exitCode, exitSignal: outcome.exitSignal, lastLogLine: outcome.lastLines.at(-1) ?? null });
  // `loraspec stop` leaves a marker first: a trainer that then dies of the signals was cancelled.
  const requested = existsSync(stopMarker);
  if (outcome.stoppedFor === "abort" || (requested && outcome.stoppedFor !== "diverged" && outcome.exitCode !== 0)) {
    return requested
      ? { state: "cancelled", message: "stopped by `loraspec stop`" }
      : { state: "interrupted", message: `loraspec was interrupted; the trainer was stopped (${outcome.stopSignal ?? "exit"})` };
  }
  if (outcome.failure) {
    // A trainer on a full disk may not even get its error printed: check the disk before believing the text.
    // (and give a disk-full message from the trainer's text the folder and the space figures)
    const vague = ["E_TRAINER_FAILED", "E_INTERNAL", "E_FILE_NOT_FOUND", "E_WORKER_CRASHED", "E_WORKER_PROTOCOL", "E_DISK_FULL"].includes(outcome.failure.code);
    const full = !vague ? undefined : diskFullAfterFailure({ runDir: run.runDir, outputDir: dirname(job.output), fallbackBytes: SUPERVISION_POLICY.diskNeededBeforeFirstCheckpointBytes.value });
    return { state: "failed", error: full ?? outcome.failure };
  }
  // A follower host of a multi-host run (hardware.node_rank > 0) trains its share; node 0 saves the LoRA.
  if (workerDone?.follower === true) return { state: "succeeded", output: null, trainerResult: workerDone };
  // Success is a valid LoRA file, never an exit code alone.
  const output = typeof workerDone?.path === "string" ? workerDone.path : job.output;
  try {
    await verifyLoraOutput({ path: output, precision: job.precision });
  } catch (error) {
    return { state: "failed", error: error as LoraspecError };
  }
  try {
    const final = yield* convertRunOutput({ path: output, format: job.outputFormat });
    return { state: "succeeded", output: final, trainerResult: workerDone };
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    return { state: "failed", error };
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
