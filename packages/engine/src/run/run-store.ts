import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { ulid } from "ulid";
import { LoraspecError, isLoraspecError } from "@loraspec/core/errors.js";
import { ioError } from "./io-errors.js";
import { judgeFromDisk, type DiskVerdict } from "./judge-from-disk.js";
import { COLUMNS, fromRow, migrate, storedRunDir, type Row } from "./run-db.js";
import { ACTIVE_STATES, RESUMABLE_STATES, canTransition, type RunState } from "./run-state.js";
import { defaultIsAlive, supervisorAlive } from "./supervisor-pid.js";

/**
 * The run store: one SQLite file per project (`.loraspec/loraspec.db`, WAL) indexing every run
 * and its state. The run folder holds the files; this table says what state each run is in,
 * which process runs it and what it last printed, so a crash never leaves a run "running".
 * The states and their moves are in run-state.ts, the table and its rows in run-db.ts.
 */

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

/** What reconcile asks of the world; tests pass their own. */
export interface ReconcileOptions {
  /** Whether a pid (with its recorded start time) is still our process; default supervisor-pid.ts defaultIsAlive. */
  isAlive?: (pid: number, pidStart: string | null) => boolean;
  /** What a run's folder says of how it ended; default judge-from-disk.ts judgeFromDisk. */
  judge?: (runDir: string) => DiskVerdict | undefined;
}

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
  reconcile(params?: ReconcileOptions): RunRecord[];
  close(): void;
}

/** Keeps a stored log line short: it is a diagnosis hint, the full log is in the run folder. */
const LAST_LINE_MAX = 500;

export function runsDir(projectDir: string): string {
  return join(projectDir, ".loraspec", "runs");
}

export function runDirFor(projectDir: string, id: string): string {
  return join(runsDir(projectDir), id);
}

/** Runs a step on the database, turning a full disk or an I/O failure into E_DISK_FULL / E_IO naming the store. */
type Io = <T>(doing: string, fn: () => T) => T;

/** What the store's writes share: the open database, the project, the clock and the I/O guard. */
interface StoreDb {
  db: Database.Database;
  projectDir: string;
  now: () => string;
  io: Io;
}

function ioFor(dbPath: string): Io {
  return <T>(doing: string, fn: () => T): T => {
    try {
      return fn();
    } catch (error) {
      throw ioError(error, { path: dbPath, doing }) ?? error;
    }
  };
}

/** Opens the store's database with its pragmas; unless read-only, creates it and migrates it. */
function openDatabase(stateDir: string, dbPath: string, readonly: boolean | undefined, io: Io): Database.Database {
  const db = io("opening the run store", () => {
    // Read-only: `loraspec runs` on a full disk still lists (WAL readers need no write).
    if (readonly) return new Database(dbPath, { readonly: true, fileMustExist: true });
    mkdirSync(stateDir, { recursive: true });
    const opened = new Database(dbPath);
    // WAL: readers (`loraspec runs`, the web page) never block the supervisor's writes.
    opened.pragma("journal_mode = WAL");
    return opened;
  });
  // Two loraspec processes may write at once (a run and a `stop`): wait instead of failing.
  db.pragma("busy_timeout = 5000");
  if (!readonly) {
    db.pragma("synchronous = NORMAL");
    io("migrating the run store", () => migrate(db));
  }
  return db;
}

/** Opens (and creates or migrates) the project's run store. */
export function openRunStore(params: { projectDir: string; now?: () => Date; readonly?: boolean }): RunStore {
  const { projectDir } = params;
  const now = () => (params.now ? params.now() : new Date()).toISOString();
  const stateDir = join(projectDir, ".loraspec");
  const dbPath = join(stateDir, "loraspec.db");
  const io = ioFor(dbPath);
  const db = openDatabase(stateDir, dbPath, params.readonly, io);
  const s: StoreDb = { db, projectDir, now, io };

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

  const store: RunStore = {
    projectDir,
    dbPath,
    create(run) {
      return get(insertRun(s, run));
    },
    get,
    find,
    refused: [],
    problems: [],
    list() {
      const { runs, refused } = listRuns(selectAll.all() as Row[], projectDir);
      store.refused.splice(0, store.refused.length, ...refused);
      return runs;
    },
    transition(id, to, patch = {}) {
      return transitionRun(s, get, id, to, patch);
    },
    update(id, patch) {
      get(id);
      applyPatch(s, id, patch);
      return get(id);
    },
    reconcile(options = {}) {
      const { changed, problems } = reconcileRuns(store, options);
      store.problems.splice(0, store.problems.length, ...problems);
      return changed;
    },
    close() {
      db.close();
    },
  };
  return store;
}

/** Inserts a new run, `queued`, and returns its id. */
function insertRun(s: StoreDb, run: NewRun): string {
  const id = run.id ?? ulid();
  const createdAt = s.now();
  s.io("creating the run", () => s.db.prepare(
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
  return id;
}

/** Writes a patch (and `extra` columns, by column name) to a run's row, stamping `updated_at`. */
function applyPatch(s: StoreDb, id: string, patch: RunPatch, extra: Record<string, unknown> = {}): void {
  const sets: string[] = ["updated_at = @updated_at"];
  const values: Record<string, unknown> = { id, updated_at: s.now(), ...extra };
  for (const key of Object.keys(extra)) sets.push(`${key} = @${key}`);
  for (const [key, value] of Object.entries(patch) as [keyof RunPatch, unknown][]) {
    if (value === undefined) continue;
    const column = COLUMNS[key];
    sets.push(`${column} = @${column}`);
    values[column] = key === "lastLogLine" && typeof value === "string" ? value.slice(-LAST_LINE_MAX) : value;
  }
  s.io(`recording run ${id}`, () => s.db.prepare(`UPDATE runs SET ${sets.join(", ")} WHERE id = @id`).run(values));
}

/** Moves a run to a new state, checked against the state machine (E_RUN_STATE), and applies a patch. */
function transitionRun(s: StoreDb, get: (id: string) => RunRecord, id: string, to: RunState, patch: RunPatch): RunRecord {
  // One transaction: read the state, check the move, write it; a concurrent writer waits.
  return s.io(`recording run ${id} as ${to}`, () => s.db.transaction(() => {
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
      extra.started_at = s.now();
      extra.ended_at = null;
      extra.attempts = current.attempts + 1;
      extra.exit_code = null;
      extra.exit_signal = null;
      extra.error_code = null;
      extra.error_message = null;
    }
    if (["succeeded", "failed", "cancelled", "interrupted"].includes(to)) extra.ended_at = s.now();
    applyPatch(s, id, patch, extra);
    return get(id);
  })());
}

/** The rows as runs; one hostile or stale row must not hide every other run: it is left out and named. */
function listRuns(rows: Row[], projectDir: string): { runs: RunRecord[]; refused: { id: string; message: string }[] } {
  const refused: { id: string; message: string }[] = [];
  const runs: RunRecord[] = [];
  for (const row of rows) {
    try {
      runs.push(fromRow(row, projectDir));
    } catch (error) {
      if (!isLoraspecError(error) || error.code !== "E_PATH_OUTSIDE_PROJECT") throw error;
      refused.push({ id: row.id, message: error.message });
    }
  }
  return { runs, refused };
}

/** RunStore.reconcile: the runs it settled, and the run-folder files it could not read. */
function reconcileRuns(store: RunStore, options: ReconcileOptions): { changed: RunRecord[]; problems: RunFileProblem[] } {
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
    const [to, patch] = settledState(run, verdict);
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
  return { changed, problems };
}

/** The state (and patch) a run whose process is gone settles in, from what its folder says. */
function settledState(run: RunRecord, verdict: DiskVerdict | undefined): [RunState, RunPatch] {
  const last = run.lastLogLine ? `; last log line: ${run.lastLogLine}` : "";
  return verdict?.state === "succeeded"
    ? ["succeeded", { outputPath: verdict.outputPath, step: verdict.step ?? run.step, errorCode: null, errorMessage: null }]
    : verdict?.state === "failed"
      ? ["failed", { errorCode: verdict.errorCode, errorMessage: verdict.errorMessage }]
      : ["interrupted", { errorCode: "E_WORKER_CRASHED", errorMessage: `the process running this run (pid ${run.pid ?? "none"}) is gone${last}` }];
}
