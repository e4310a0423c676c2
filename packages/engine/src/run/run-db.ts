import { isAbsolute, join } from "node:path";
import type Database from "better-sqlite3";
import { LoraspecError } from "@loraspec/core/errors.js";
import { resolveInsideProjectSync } from "../fs/safe-path.js";
import { RUN_STATES, type RunState } from "./run-state.js";
import type { RunPatch, RunRecord } from "./run-store.js";

/**
 * The run store's SQLite side (run-store.ts): the `runs` table and its migration, and the
 * mapping between a row and a RunRecord, run folder included.
 */
const SCHEMA_VERSION = 1;

/** The column each patchable RunRecord field is stored in. */
export const COLUMNS: Record<keyof RunPatch, string> = {
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

/** Creates the `runs` table in a store older than SCHEMA_VERSION (a new one included). */
export function migrate(db: Database.Database): void {
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

/** What the store records for a run's folder: relative to the project, so a moved project keeps working. */
export function storedRunDir(id: string): string {
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

export interface Row {
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

/** A row as a RunRecord; its run folder resolved inside the project (resolveRunDir), else E_PATH_OUTSIDE_PROJECT. */
export function fromRow(row: Row, projectDir: string): RunRecord {
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
