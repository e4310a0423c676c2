import type { Contract } from "../contract/schema.js";
import { getBaseModel, type BaseModelRecord } from "../knowledge/base-models.js";
import { LoraspecError } from "../errors.js";
import { baseSource } from "../contract/base-path.js";

/**
 * What the external-trainer compilers need from the plan: the numbers the plan resolved from the
 * contract and the knowledge base. Every field is optional; a missing one falls back to the
 * contract's own value. (The foundation's Plan type is structurally compatible when it carries
 * these names; adapt here if it does not.)
 */
export interface CompilePlan {
  steps?: number;
  learningRate?: number;
  /** Dataset repeats per epoch (kohya num_repeats, ai-toolkit num_repeats). */
  repeats?: number;
  resolution?: number;
  saveEvery?: number;
  /** kohya FLUX.1 only: transformer blocks swapped to the CPU to fit the VRAM. */
  blocksToSwap?: number;
}

/** Where things are on the machine that runs the trainer. Absolute paths in real use. */
export interface CompilePaths {
  /** The prepared dataset folder (images + caption sidecars). */
  datasetDir: string;
  /** The regularisation images (dataset.reg_path), resolved; captions are trained as written. */
  regDir?: string;
  /**
   * True when datasetDir is loraspec's own copy (prepared dataset, run folder) that trainers may
   * write caches into. False (default): kohya caches in memory only; ai-toolkit still writes
   * `.aitk_size.json` there (see `writesIntoDataset`), so pass it a copy.
   */
  datasetWritable?: boolean;
  /** The run folder: checkpoints and the final LoRA land here. */
  outputDir: string;
  /** Where the compiled files are written (defaults to outputDir). */
  configDir?: string;
  /** The trainer checkout (`loraspec setup`); its scripts are launched from here. */
  trainerDir?: string;
  /**
   * The contract's folder: a relative local `base.path` (./x, ../x) is joined to it, since the
   * trainer runs with its own checkout as the working directory.
   */
  contractDir?: string;
  /**
   * The user's home folder: a `base.path` of `~/x` expands against it (the engine passes os.homedir()).
   * With contractDir, base.path is resolved; without both, it is written as given (tests, goldens).
   */
  home?: string;
  /**
   * kohya FLUX.1 only: the BFL single file of each role as check's preflight found it in base.path's folder
   * (engine project/preflight-base.ts kohyaFluxFilesOf; knowledge/base-load-forms.ts KOHYA_FLUX_FILE_ROLES).
   * Without it each role's first accepted name is written (tests, goldens).
   */
  baseFiles?: Readonly<Partial<Record<"transformer" | "clip_l" | "t5xxl" | "ae", string>>>;
  /** The trainer's venv; `bin/accelerate` and `bin/python` are used from it when given. */
  venvDir?: string;
  /**
   * kohya only: a folder of tokenizers saved as `<hub id with / -> _>/` (sd-scripts
   * `--tokenizer_cache_dir`), for machines that cannot reach the Hugging Face hub.
   */
  tokenizerCacheDir?: string;
}

/** The numbers every backend needs, resolved once. */
export interface ResolvedTraining {
  base: BaseModelRecord;
  steps: number;
  learningRate: number;
  repeats: number;
  resolution: number;
  rank: number;
  alpha: number;
  /** Steps between checkpoint saves (the final save always happens). */
  saveEvery: number;
  batchSize: number;
  gradientAccumulation: number;
}

export function resolveTraining(contract: Contract, plan: CompilePlan = {}): ResolvedTraining {
  const base = getBaseModel(contract.base.model);
  if (!base) {
    throw new LoraspecError("E_UNKNOWN_BASE_MODEL", `Unknown base model "${contract.base.model}".`, { field: "base.model" });
  }
  const hp = contract.hyperparameters;
  const steps = plan.steps ?? hp.steps;
  if (steps === undefined) {
    throw new LoraspecError("E_CONTRACT_INVALID", "The number of training steps is not resolved.", {
      field: "hyperparameters.steps",
      hint: "Set hyperparameters.steps (or passes_per_image, which the plan turns into steps).",
    });
  }
  const learningRate = plan.learningRate ?? hp.learning_rate;
  if (learningRate === undefined) {
    throw new LoraspecError("E_CONTRACT_INVALID", "The learning rate is not resolved.", {
      field: "hyperparameters.learning_rate",
      hint: "Set hyperparameters.learning_rate, or compile from a plan (which takes it from the knowledge base).",
    });
  }
  return {
    base,
    steps,
    learningRate,
    repeats: plan.repeats ?? 1,
    resolution: plan.resolution ?? contract.dataset.resolution ?? base.nativeResolution,
    rank: hp.rank,
    alpha: hp.alpha ?? hp.rank,
    saveEvery: Math.min(plan.saveEvery ?? hp.save_every ?? steps, steps),
    batchSize: hp.batch_size,
    gradientAccumulation: hp.gradient_accumulation,
  };
}

/** Joins POSIX-style path parts without node:path (core stays pure). */
export function joinPath(...parts: string[]): string {
  return parts
    .filter((p) => p.length > 0)
    .map((p, i) => (i === 0 ? p.replace(/\/+$/, "") : p.replace(/^\/+|\/+$/g, "")))
    .join("/");
}

/** A compiled file: its name inside configDir and its text. */
export interface CompiledFile {
  name: string;
  path: string;
  content: string;
}

/**
 * `base.path` as the trainer should open it (contract/base-path.ts, one rule for every consumer): a
 * local path absolute (`~` expanded, relative ones against contractDir), a Hugging Face id as it is.
 * Without contractDir and home (a compile outside a run: tests, goldens) it is left as written.
 */
export function resolveBasePath(path: string | undefined, paths: Pick<CompilePaths, "contractDir" | "home">): string | undefined {
  if (path === undefined || paths.contractDir === undefined || paths.home === undefined) return path;
  const source = baseSource(path, { contractDir: paths.contractDir, home: paths.home });
  return source.kind === "local" ? source.path : source.id;
}

/** A note when the contract pins another trainer version than the one the compiler targets. */
export function versionWarnings(contractVersion: string | undefined, pinned: string): string[] {
  if (contractVersion === undefined || contractVersion.replace(/^v/, "") === pinned.replace(/^v/, "")) return [];
  return [
    `The contract names trainer version ${contractVersion}; loraspec compiles for the pinned ${pinned} (its option list is checked against that version). Run \`loraspec setup\` to install ${pinned}, or check the options yourself.`,
  ];
}
