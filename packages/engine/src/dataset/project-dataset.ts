import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { LoraspecError } from "@loraspec/core/errors.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { loadContract, resolveDatasetDir } from "../contract/load-contract.js";
import type { PrepManifest } from "./prep-manifest.js";
import { choosePreparedDir, findPreparedDir, type OtherPrepared } from "./prepared-folder.js";

export { PREPARED_DIR } from "./prepared-folder.js";

export interface ProjectDataset {
  contract?: Contract;
  /** The contract's folder, or the working directory without one. */
  projectDir: string;
  datasetDir?: string;
  /**
   * With a dataset: its prepared folder (prepared-folder.ts), the one prep writes by default: the
   * folder prep already made from this dataset, else a free one under `.loraspec/`.
   */
  preparedDir?: string;
  /** True when preparedDir holds prep's manifest for this dataset: caption and train use it. */
  prepared?: boolean;
  /** The project's prepared folders that belong to other datasets (never used for this one). */
  otherPrepared?: OtherPrepared[];
  /** dataset.resolution, else the base model's native resolution from the knowledge base. */
  resolution?: number;
  /** True when the base model's text encoder reads sentences (T5/LLM). */
  naturalLanguageEncoder?: boolean;
}

/**
 * What prep and caption need from a project: the contract when there is one (a missing file is
 * fine when the caller passes everything on the command line), folders and the resolution.
 */
export async function resolveProjectDataset(params: { contractPath?: string; cwd?: string; requireContract?: boolean }): Promise<ProjectDataset> {
  const cwd = params.cwd ?? process.cwd();
  const path = params.contractPath ?? "lora.yaml";
  if (!params.requireContract && !params.contractPath && !existsSync(resolve(cwd, path))) {
    return { projectDir: cwd };
  }
  const loaded = await loadContract({ path, cwd });
  const contract = loaded.contract;
  const base = getBaseModel(contract.base.model);
  if (!base && !contract.dataset.resolution) {
    throw new LoraspecError("E_UNKNOWN_BASE_MODEL", `unknown base model "${contract.base.model}"`, { file: loaded.displayName, field: "base.model" });
  }
  const datasetDir = resolveDatasetDir(loaded);
  const chosen = await choosePreparedDir({ projectDir: loaded.dir, datasetDir });
  return {
    contract,
    projectDir: loaded.dir,
    datasetDir,
    preparedDir: chosen.dir,
    prepared: chosen.existing,
    otherPrepared: chosen.others,
    resolution: contract.dataset.resolution ?? base?.nativeResolution,
    naturalLanguageEncoder: base ? base.captionEncoder !== "clip" : undefined,
  };
}

/** The folder `loraspec caption` works on: the dataset's own prepared folder once prep has made it, else the dataset. */
export function defaultCaptionDir(project: ProjectDataset): string | undefined {
  return project.prepared && project.preparedDir ? project.preparedDir : project.datasetDir;
}

/** What a run trains on, and where it came from. */
export interface TrainingDataDir {
  /** The folder handed to the trainer. */
  dir: string;
  /** True when `dir` is prep's output for this dataset. */
  prepared: boolean;
  /** The contract's dataset folder. */
  dataset: string;
  /** Prepared folders of the project made from other datasets (not used); only when there are some. */
  others?: OtherPrepared[];
}

/**
 * The images a run trains on: the dataset's own prepared folder once `loraspec prep` has made it
 * (deduplicated, cropped and resized to the contract's resolution, captions beside them), else the
 * dataset as it is. A prepared folder made from another dataset is never used (prepared-folder.ts).
 */
export async function trainingDatasetDir(projectDir: string, datasetDir: string): Promise<TrainingDataDir> {
  return (await trainingData(projectDir, datasetDir)).found;
}

/**
 * What a run trains on (trainingDatasetDir) with the crop prep used for it (its manifest's
 * settings.crop): what lint checks `dataset.crop` against (core lint/crop-rules.ts); and the manifest, which
 * check compares with the dataset (prepared-stale.ts).
 */
export async function trainingDataOf(projectDir: string, datasetDir: string): Promise<TrainingDataDir & { crop?: "center" | "attention"; manifest?: PrepManifest }> {
  const { found, crop, manifest } = await trainingData(projectDir, datasetDir);
  return found.prepared ? { ...found, crop: crop === "attention" ? "attention" : "center", manifest } : found;
}

/** One line on what a run trains on, for train and check: truthful about a prepared folder of another dataset. */
export function describeTrainingData(data: TrainingDataDir, contractFile: string): string {
  if (data.prepared) return `${data.dir} (prepared by loraspec prep from ${data.dataset}; run it again after changing the images)`;
  if (!data.others?.length) return data.dir;
  const others = data.others.map((o) => (o.dataset ? `${o.dir} was prepared from ${o.dataset}` : `${o.dir} has a manifest that names no dataset loraspec can read`)).join("; ");
  return `${data.dir} (as it is, not prepared: ${others}, not from this dataset; \`loraspec prep ${contractFile}\` prepares this one)`;
}

async function trainingData(projectDir: string, datasetDir: string): Promise<{ found: TrainingDataDir; crop?: unknown; manifest?: PrepManifest }> {
  const lookup = await findPreparedDir({ projectDir, datasetDir });
  const others = lookup.others.length ? { others: lookup.others } : {};
  if (!lookup.own) return { found: { dir: datasetDir, prepared: false, dataset: datasetDir, ...others } };
  return { found: { dir: lookup.own.dir, prepared: true, dataset: datasetDir, ...others }, crop: lookup.own.manifest.settings.crop, manifest: lookup.own.manifest };
}
