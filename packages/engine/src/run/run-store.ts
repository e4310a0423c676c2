import { mkdirSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import Database from "better-sqlite3";
import { ulid } from "ulid";
import { LoraspecError, isLoraspecError } from "@loraspec/core/errors.js";
import { resolveInsideProjectSync } from "../fs/safe-path.js";
import { ioError } from "./io-errors.js";
import { judgeFromDisk, type DiskVerdict } from "./judge-from-disk.js";
import { isProcessAlive, processStartTime } from "./process-alive.js";
import { readRunTextSync } from "./run-files.js";

/**
 * The run store: one SQLite file per project (`.loraspec/loraspec.db`, WAL) indexing every run
 * and its state. The run folder holds the files; this table says what state each run is in,
 * which process runs it and what it last printed, so a crash never leaves a run "running".
 */
export const RUN_STATES = ["queued", "starting", "running", "succeeded", "failed", "cancelled", "interrupted"] as const;
export type RunState = (typeof RUN_STATES)[number];

/** Where each state may go. Terminal-but-resumable states may go back to `starting`. */
const TRANSITIONS: Record<RunState, readonly RunState[]> = {
  queued: ["starting", "cancelled", "failed"],
  starting: ["running", "succeeded", "failed", "cancelled", "interrupted"],
  running: ["succeeded", "failed", "cancelled", "interrupted"],
  // -> succeeded: reconciliation found the trainer's done line after the run was marked interrupted.
  interrupted: ["starting", "succeeded", "failed", "cancelled"],
  failed: ["starting"],
  cancelled: ["starting"],
  succeeded: [],
};

export const ACTIVE_STATES: readonly RunState[] = ["starting", "running"];
export const RESUMABLE_STATES: readonly RunState[] = ["interrupted", "failed", "cancelled"];

export function canTransition(from: RunState, to: RunState): boolean {
  return TRANSITIONS[from].includes(to);
}

export interface RunRecord {
  id: string;
  name: string | null;
  state: RunState;
  trainer: string;
  base: string | null;
  contractPath: string | null;
  runDir: string;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  updatedAt: string;
  /** The process that does the work: the trainer (local) or the loraspec poller (fal). */
  pid: number | null;
  /** The pid's start time (Linux /proc), so a recycled pid is not taken for our process. */
  pidStart: string | null;
  exitCode: number | null;
  exitSignal: string | null;
  step: number | null;
  totalSteps: number | null;
  lastLogLine: string | null;
  outputPath: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  remoteEndpoint: string | null;
  remoteRequestId: string | null;
  /** How many times it was started (1 + resumes). */
  attempts: number;
  /** Set on a record reconcile settled but could not save (disk full): why, shown by `runs`. */
  unsaved?: string;
}

/** A run-folder file reconcile could not read, with the coded error that says why. */
export interface RunFileProblem {
  id: string;
  code: string;
  /** The file as the user knows it (`.loraspec/runs/<id>/job.json`). */
  file?: string;
  message: string;
}

export interface NewRun {
  id?: string;
  name?: string;
  trainer: string;
  base?: string;
  contractPath?: string;
  totalSteps?: number;
}

export type RunPatch = Partial<
  Pick<
    RunRecord,
    | "pid"
    | "pidStart"
    | "exitCode"
    | "exitSignal"
    | "step"
    | "totalSteps"
    | "lastLogLine"
    | "outputPath"
    | "errorCode"
    | "errorMessage"
    | "remoteEndpoint"
    | "remoteRequestId"
  >
>;

export interface RunStore {
  readonly projectDir: string;
  readonly dbPath: string;
  create(run: NewRun): RunRecord;
  get(id: string): RunRecord;
  find(id: string): RunRecord | undefined;
  /** Every run whose folder lies inside the project; rows that point elsewhere are left out and named in `refused`. */
  list(): RunRecord[];
  /** Rows the last `list()` left out (a folder outside the project), each with the reason. */
  readonly refused: { id: string; message: string }[];
  /**
   * Run-folder files the last `reconcile()` could not read (E_FILE_TOO_LARGE: a job.json or
   * supervisor.pid too large to be one), each naming its run and file; that run was settled as if
   * the file said nothing.
   */
  readonly problems: RunFileProblem[];
  /** Moves a run to a new state (checked against the state machine) and applies a patch. */
  transition(id: string, to: RunState, patch?: RunPatch): RunRecord;
  /** Updates fields without changing the state (progress, last line, request id). */
  update(id: string, patch: RunPatch): RunRecord;
  /**
   * Settles runs whose process is gone from what their folder says (the trainer's final line, the
   * LoRA file and its header): succeeded, failed, or else interrupted. Returns the runs it changed.
   */
  reconcile(params?: { isAlive?: (pid: number, pidStart: string | null) => boolean; judge?: (runDir: string) => DiskVerdict | undefined }): RunRecord[];
  close(): void;
}

const SCHEMA_VERSION = 1;

const COLUMNS: Record<keyof RunPatch, string> = {
  pid: "pid",
  pidStart: "pid_start",
  exitCode: "exit_code",
  exitSignal: "exit_signal",
  step: "step",
  totalSteps: "total_steps",
  lastLogLine: "last_log_line",
  outputPath: "output_path",
  errorCode: "error_code",
  errorMessage: "error_message",
  remoteEndpoint: "remote_endpoint",
  remoteRequestId: "remote_request_id",
};

/** Keeps a stored log line short: it is a diagnosis hint, the full log is in the run folder. */
const LAST_LINE_MAX = 500;

export function runsDir(projectDir: string): string {
  return join(projectDir, ".loraspec", "runs");
}

export function runDirFor(projectDir: string, id: string): string {
  return join(runsDir(projectDir), id);
}

/** What the store records for a run's folder: relative to the project, so a moved project keeps working. */
function storedRunDir(id: string): string {
  return `.loraspec/runs/${id}`;
}

/**
 * A row's run folder, absolute, through the same confinement as every file the web page
 * touches: the database is a file in the project and may come from anyone, so a folder outside
 * the project is refused (E_PATH_OUTSIDE_PROJECT). Rows from before relative paths hold an
 * absolute `<old project>/.loraspec/runs/<id>`: that is read as this project's own run folder.
 */
export function resolveRunDir(projectDir: string, row: { id: string; run_dir: string }): string {
  let rel = row.run_dir;
  if (isAbsolute(rel) || /^[a-zA-Z]:[\\/]/.test(rel)) {
    const tail = rel.split(/[\\/]+/).slice(-3);
    rel = tail.length === 3 && tail[0] === ".loraspec" && tail[1] === "runs" && tail[2] === row.id ? storedRunDir(row.id) : rel;
  }
  try {
    resolveInsideProjectSync({ projectDir, path: rel });
  } catch (error) {
    throw new LoraspecError("E_PATH_OUTSIDE_PROJECT", `run ${row.id}: its folder "${row.run_dir}" is outside the project ${projectDir}`, {
      hint: "the run store (.loraspec/loraspec.db) was edited or copied from elsewhere; remove that run's row",
      cause: error,
    });
  }
  return join(projectDir, ...rel.split(/[\\/]+/));
}

/** Opens (and creates or migrates) the project's run store. */
export function openRunStore(params: { projectDir: string; now?: () => Date; readonly?: boolean }): RunStore {
  const { projectDir } = params;
  const now = () => (params.now ? params.now() : new Date()).toISOString();
  const stateDir = join(projectDir, ".loraspec");
  const dbPath = join(stateDir, "loraspec.db");
  const io = <T>(doing: string, fn: () => T): T => {
    try {
      return fn();
    } catch (error) {
      throw ioError(error, { path: dbPath, doing }) ?? error;
    }
  };
  const db = io("opening the run store", () => {
    // Read-only: `loraspec runs` on a full disk still lists (WAL readers need no write).
    if (params.readonly) return new Database(dbPath, { readonly: true, fileMustExist: true });
    mkdirSync(stateDir, { recursive: true });
    const opened = new Database(dbPath);
    // WAL: readers (`loraspec runs`, the web page) never block the supervisor's writes.
    opened.pragma("journal_mode = WAL");
    return opened;
  });
  // Two loraspec processes may write at once (a run and a `stop`): wait instead of failing.
  db.pragma("busy_timeout = 5000");
  if (!params.readonly) {
    db.pragma("synchronous = NORMAL");
    io("migrating the run store", () => migrate(db));
  }

  const selectOne = db.prepare("SELECT * FROM runs WHERE id = ?");
  const selectAll = db.prepare("SELECT * FROM runs ORDER BY created_at DESC, id DESC");

  const find = (id: string): RunRecord | undefined => {
    const row = selectOne.get(id) as Row | undefined;
    return row ? fromRow(row, projectDir) : undefined;
  };
  const get = (id: string): RunRecord => {
    const run = find(id);
    if (!run) {
      throw new LoraspecError("E_RUN_NOT_FOUND", `no run with id "${id}" in ${projectDir}`, {
        hint: "list the runs with `loraspec runs`",
      });
    }
    return run;
  };

  const applyPatch = (id: string, patch: RunPatch, extra: Record<string, unknown> = {}): void => {
    const sets: string[] = ["updated_at = @updated_at"];
    const values: Record<string, unknown> = { id, updated_at: now(), ...extra };
    for (const key of Object.keys(extra)) sets.push(`${key} = @${key}`);
    for (const [key, value] of Object.entries(patch) as [keyof RunPatch, unknown][]) {
      if (value === undefined) continue;
      const column = COLUMNS[key];
      sets.push(`${column} = @${column}`);
      values[column] = key === "lastLogLine" && typeof value === "string" ? value.slice(-LAST_LINE_MAX) : value;
    }
    io(`recording run ${id}`, () => db.prepare(`UPDATE runs SET ${sets.join(", ")} WHERE id = @id`).run(values));
  };

  const store: RunStore = {
    projectDir,
    dbPath,
    create(run) {
      const id = run.id ?? ulid();
      const createdAt = now();
      io("creating the run", () => db.prepare(
        `INSERT INTO runs (id, name, state, trainer, base, contract_path, run_dir, created_at, updated_at, total_steps, attempts)
         VALUES (@id, @name, 'queued', @trainer, @base, @contract_path, @run_dir, @created_at, @created_at, @total_steps, 0)`,
      ).run({
        id,
        name: run.name ?? null,
        trainer: run.trainer,
        base: run.base ?? null,
        contract_path: run.contractPath ?? null,
        run_dir: storedRunDir(id),
        created_at: createdAt,
        total_steps: run.totalSteps ?? null,
      }));
      return get(id);
    },
    get,
    find,
    refused: [],
    problems: [],
    list() {
      // One hostile or stale row must not hide every other run: it is left out and named.
      const refused: { id: string; message: string }[] = [];
      const runs: RunRecord[] = [];
      for (const row of selectAll.all() as Row[]) {
        try {
          runs.push(fromRow(row, projectDir));
        } catch (error) {
          if (!isLoraspecError(error) || error.code !== "E_PATH_OUTSIDE_PROJECT") throw error;
          refused.push({ id: row.id, message: error.message });
        }
      }
      store.refused.splice(0, store.refused.length, ...refused);
      return runs;
    },
    transition(id, to, patch = {}) {
      // One transaction: read the state, check the move, write it; a concurrent writer waits.
      return io(`recording run ${id} as ${to}`, () => db.transaction(() => {
        const current = get(id);
        if (!canTransition(current.state, to)) {
          throw new LoraspecError("E_RUN_STATE", `run ${id} is ${current.state}; it cannot become ${to}`, {
            hint: RESUMABLE_STATES.includes(current.state)
              ? `resume it with \`loraspec train --resume ${id}\``
              : current.state === "succeeded"
                ? "it already finished; start a new run with `loraspec train`"
                : undefined,
            details: { from: current.state, to },
          });
        }
        const extra: Record<string, unknown> = { state: to };
        if (to === "starting") {
          extra.started_at = now();
          extra.ended_at = null;
          extra.attempts = current.attempts + 1;
          extra.exit_code = null;
          extra.exit_signal = null;
          extra.error_code = null;
          extra.error_message = null;
        }
        if (["succeeded", "failed", "cancelled", "interrupted"].includes(to)) extra.ended_at = now();
        applyPatch(id, patch, extra);
        return get(id);
      })());
    },
    update(id, patch) {
      get(id);
      applyPatch(id, patch);
      return get(id);
    },
    reconcile(options = {}) {
      const alive = options.isAlive ?? defaultIsAlive;
      const judge = options.judge ?? judgeFromDisk;
      const changed: RunRecord[] = [];
      const problems: RunFileProblem[] = [];
      // A run-folder file too large to read is named, and the run settled as if it said nothing:
      // one hostile run folder must not stop every command that lists runs.
      const unread = <T>(id: string, read: () => T): T | undefined => {
        try {
          return read();
        } catch (error) {
          if (!isLoraspecError(error) || error.code !== "E_FILE_TOO_LARGE") throw error;
          problems.push({ id, code: error.code, file: error.file, message: error.message });
          return undefined;
        }
      };
      for (const run of store.list()) {
        // An interrupted run whose trainer went on to finish (its supervisor died first) is settled too.
        const crashed = run.state === "interrupted" && run.errorCode === "E_WORKER_CRASHED";
        if (!ACTIVE_STATES.includes(run.state) && !crashed) continue;
        if (!crashed) {
          // A run that never got a process (crash between insert and spawn) is gone as well.
          if (run.pid !== null && alive(run.pid, run.pidStart)) continue;
          // Its supervising loraspec still lives: the trainer just exited and the end is being recorded.
          if (unread(run.id, () => supervisorAlive(run.runDir, alive))) continue;
        }
        const verdict = unread(run.id, () => judge(run.runDir));
        if (crashed && verdict?.state !== "succeeded") continue;
        const last = run.lastLogLine ? `; last log line: ${run.lastLogLine}` : "";
        const [to, patch]: [RunState, RunPatch] =
          verdict?.state === "succeeded"
            ? ["succeeded", { outputPath: verdict.outputPath, step: verdict.step ?? run.step, errorCode: null, errorMessage: null }]
            : verdict?.state === "failed"
              ? ["failed", { errorCode: verdict.errorCode, errorMessage: verdict.errorMessage }]
              : ["interrupted", { errorCode: "E_WORKER_CRASHED", errorMessage: `the process running this run (pid ${run.pid ?? "none"}) is gone${last}` }];
        try {
          changed.push(store.transition(run.id, to, patch));
        } catch (error) {
          // A full disk (or a read-only store) cannot take the write: report the settled state
          // anyway, so no run shows `running` for a process that is gone; the next command saves it.
          if (!(isLoraspecError(error) && (error.code === "E_DISK_FULL" || error.code === "E_IO"))) throw error;
          const settled = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
          changed.push({ ...run, ...settled, state: to, unsaved: error.message });
        }
      }
      store.problems.splice(0, store.problems.length, ...problems);
      return changed;
    },
    close() {
      db.close();
    },
  };
  return store;
}

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

function defaultIsAlive(pid: number, pidStart: string | null): boolean {
  if (!isProcessAlive(pid)) return false;
  if (pidStart === null) return true;
  const start = processStartTime(pid);
  // Where the start time cannot be read (not Linux), trust the pid alone.
  return start === undefined || start === pidStart;
}

function migrate(db: Database.Database): void {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version >= SCHEMA_VERSION) return;
  db.exec(`
    CREATE TABLE IF NOT EXISTS runs (
      id TEXT PRIMARY KEY,
      name TEXT,
      state TEXT NOT NULL CHECK (state IN (${RUN_STATES.map((s) => `'${s}'`).join(", ")})),
      trainer TEXT NOT NULL,
      base TEXT,
      contract_path TEXT,
      run_dir TEXT NOT NULL,
      created_at TEXT NOT NULL,
      started_at TEXT,
      ended_at TEXT,
      updated_at TEXT NOT NULL,
      pid INTEGER,
      pid_start TEXT,
      exit_code INTEGER,
      exit_signal TEXT,
      step INTEGER,
      total_steps INTEGER,
      last_log_line TEXT,
      output_path TEXT,
      error_code TEXT,
      error_message TEXT,
      remote_endpoint TEXT,
      remote_request_id TEXT,
      attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS runs_state ON runs (state);
    PRAGMA user_version = ${SCHEMA_VERSION};
  `);
}

interface Row {
  id: string;
  name: string | null;
  state: RunState;
  trainer: string;
  base: string | null;
  contract_path: string | null;
  run_dir: string;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  updated_at: string;
  pid: number | null;
  pid_start: string | null;
  exit_code: number | null;
  exit_signal: string | null;
  step: number | null;
  total_steps: number | null;
  last_log_line: string | null;
  output_path: string | null;
  error_code: string | null;
  error_message: string | null;
  remote_endpoint: string | null;
  remote_request_id: string | null;
  attempts: number;
}

function fromRow(row: Row, projectDir: string): RunRecord {
  return {
    id: row.id,
    name: row.name,
    state: row.state,
    trainer: row.trainer,
    base: row.base,
    contractPath: row.contract_path,
    runDir: resolveRunDir(projectDir, row),
    createdAt: row.created_at,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    updatedAt: row.updated_at,
    pid: row.pid,
    pidStart: row.pid_start,
    exitCode: row.exit_code,
    exitSignal: row.exit_signal,
    step: row.step,
    totalSteps: row.total_steps,
    lastLogLine: row.last_log_line,
    outputPath: row.output_path,
    errorCode: row.error_code,
    errorMessage: row.error_message,
    remoteEndpoint: row.remote_endpoint,
    remoteRequestId: row.remote_request_id,
    attempts: row.attempts,
  };
}
