/**
 * The shapes the HTTP API answers with, shared by the routes (which are typed against them)
 * and the page (type-only imports: nothing from the engine reaches the browser bundle).
 */
import type { Finding } from "@loraspec/core/lint/finding.js";
import type { DuplicateCluster } from "../dataset/dedupe.js";
import type { RunSummary } from "./deps.js";

export type { DuplicateCluster };

export interface ApiErrorBody {
  error: { code: string; message: string; hint?: string; field?: string; file?: string };
}

export interface ProjectResponse {
  name: string;
  /** Stable per project (its real path, hashed): what the page keys its drafts by. */
  id: string;
  contractFile: string;
  hasContract: boolean;
  examples: string[];
  capabilities: Record<string, boolean>;
  /** Where project files are served for sandboxed documents (reports): `/pf/<key>/`. */
  filesBase: string;
}

export interface ContractResponse {
  file: string;
  yaml: string;
  contract?: unknown;
  error?: unknown;
}

export interface ImageProblem {
  code: string;
  message: string;
}

export interface ImageRow {
  path: string;
  bytes: number;
  width?: number;
  height?: number;
  caption: string | null;
  captionFile: string;
  problems: ImageProblem[];
}

export interface DatasetResponse {
  dir: string;
  trigger: string;
  captionStyle: "natural" | "tags";
  captionExtension: string;
  resolution?: number;
  crop: "center" | "attention";
  images: ImageRow[];
  /** The scan check and prep share (null without a scanner): the page shows its duplicate clusters side by side. */
  summary?: { duplicates?: DuplicateCluster[] } | null;
  /** The user's stored keep/drop choices on duplicates (.loraspec/dataset-pins.json). */
  pins?: { keep: string[]; distinct: Array<[string, string]> };
  /** Why the stored choices are not applied (a pins file that cannot be used: dataset-pins-invalid), as check reports it. */
  pinsFinding?: Finding;
  /** Hidden files and folders (names starting with "."; folders end in "/") the listing leaves out unread. */
  hidden: string[];
  /** check's dataset-hidden-files finding for them (first few named), when there are any: the page shows it. */
  hiddenFinding?: Finding;
}

/** A run as the page sees it: paths relative to the project. */
export type RunView = RunSummary;

export interface RunsResponse {
  runs: RunView[];
}

export interface RunResponse {
  run: RunView;
}

export interface RunLogResponse {
  /** The log shown, relative to the run folder; null when the run has none yet. */
  file: string | null;
  lines: string[];
}

export interface SamplesResponse {
  samples: Array<{ path: string; step?: number; prompt?: string; seed?: number }>;
}

export interface LossResponse {
  steps: number[];
  loss: number[];
  avgLoss: Array<number | null>;
}

export interface FileEntry {
  path: string;
  bytes: number;
  mtime: string;
}

export interface ValidationReport extends FileEntry {
  folder: string;
  summary?: unknown;
}

export interface ValidationReportsResponse {
  reports: ValidationReport[];
}

export interface LoraFilesResponse {
  files: FileEntry[];
}
