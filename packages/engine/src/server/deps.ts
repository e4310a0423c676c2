import type { LoraspecEvent } from "@loraspec/core/events.js";

/**
 * What the server needs from the rest of loraspec. Each piece is injected so tests can run the
 * API in-process and so the server never depends on how a capability is implemented; the `ui`
 * command wires the real ones (default-deps.ts). A missing piece answers 501 E_NOT_SUPPORTED.
 */
export interface ServerDeps {
  /** Parses and validates contract YAML; throws E_YAML_SYNTAX / E_CONTRACT_INVALID with file and field. */
  parseContract?: (params: { text: string; file: string }) => unknown;
  /** Lint findings for a parsed contract (and the dataset summary when known). */
  /** `dataset` and `regDataset` (dataset.reg_path): the plan's sources (core plan/plan-inputs.ts), as check hands them. */
  lint?: (params: { contract: unknown; dataset?: unknown; regDataset?: unknown }) => unknown | Promise<unknown>;
  /** The plan: resolved steps, LR, VRAM, time and cost. */
  plan?: (params: { contract: unknown; dataset?: unknown; regDataset?: unknown }) => unknown;
  /** A dataset summary with per-image problems (unreadable, too small, duplicates). */
  scanDataset?: (params: {
    dir: string;
    contract: unknown;
    signal?: AbortSignal;
    /** The user's keep/drop choices (.loraspec/dataset-pins.json), as check and prep read them. */
    pins?: { keep: string[]; distinct: Array<[string, string]> };
  }) => Promise<DatasetScan>;
  /**
   * Suggests captions for the given images (paths relative to `dir`) with a vision-language
   * model, trigger first. Writes nothing: the page shows them as unsaved edits to review.
   */
  autoCaption?: (params: {
    dir: string;
    images: string[];
    trigger: string;
    style: "natural" | "tags";
    target: "character" | "style" | "product";
    signal?: AbortSignal;
  }) => Promise<{ captions: Record<string, string>; failed: Array<{ image: string; message: string }> }>;
  runs?: RunsService;
  lora?: LoraService;
  validation?: ValidationService;
}

export interface DatasetScan {
  /** Per-image problems keyed by the image path relative to the dataset folder. */
  problems: Record<string, Array<{ code: string; message: string }>>;
  /** Anything else the scanner knows (counts, duplicate clusters), passed to lint and plan. */
  summary?: unknown;
}

export interface RunSummary {
  id: string;
  name?: string | null;
  state: string;
  trainer?: string;
  base?: string | null;
  createdAt?: string;
  startedAt?: string | null;
  endedAt?: string | null;
  step?: number | null;
  totalSteps?: number | null;
  lastLogLine?: string | null;
  outputPath?: string | null;
  errorCode?: string | null;
  errorMessage?: string | null;
  attempts?: number;
  /** The run folder, absolute. */
  runDir: string;
  /** A file of its run folder that could not be read when the run was listed (E_FILE_TOO_LARGE: job.json, supervisor.pid), named. */
  problem?: { code: string; message: string; file?: string };
}

export interface RunsService {
  list(): Promise<RunSummary[]> | RunSummary[];
  get(id: string): Promise<RunSummary> | RunSummary;
  /** Starts a run of the project's contract in the background; resolves once it is recorded. */
  start(params: { contractFile: string }): Promise<{ id: string }>;
  stop(id: string): Promise<void>;
  resume(id: string): Promise<{ id: string }>;
}

export interface LoraService {
  inspect(params: { path: string }): Promise<unknown>;
  convert(params: { path: string; to: string; out: string }): Promise<unknown>;
  merge(params: { inputs: Array<{ path: string; weight: number }>; out: string; method: string; to?: string }): Promise<unknown>;
}

export interface ValidationService {
  /** Validates a run's LoRA (or, with `checkpoints`, each checkpoint) against the contract's rubric; writes the report. */
  validate(params: { contractFile: string; runId: string; checkpoints: boolean; signal?: AbortSignal }): AsyncIterable<LoraspecEvent>;
}
