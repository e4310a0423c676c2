import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { LoraspecError } from "@loraspec/core/errors.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { loadContract, resolveDatasetDir } from "../contract/load-contract.js";
import { MANIFEST_FILE, readPrepManifest } from "./prep-manifest.js";

/** Where `prep` writes by default, relative to the project (the contract's folder). */
export const PREPARED_DIR = join(".loraspec", "prepared");

export interface ProjectDataset {
  contract?: Contract;
  /** The contract's folder, or the working directory without one. */
  projectDir: string;
  datasetDir?: string;
  preparedDir: string;
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
    return { projectDir: cwd, preparedDir: join(cwd, PREPARED_DIR) };
  }
  const loaded = await loadContract({ path, cwd });
  const contract = loaded.contract;
  const base = getBaseModel(contract.base.model);
  if (!base && !contract.dataset.resolution) {
    throw new LoraspecError("E_UNKNOWN_BASE_MODEL", `unknown base model "${contract.base.model}"`, { file: loaded.displayName, field: "base.model" });
  }
  return {
    contract,
    projectDir: loaded.dir,
    datasetDir: resolveDatasetDir(loaded),
    preparedDir: join(loaded.dir, PREPARED_DIR),
    resolution: contract.dataset.resolution ?? base?.nativeResolution,
    naturalLanguageEncoder: base ? base.captionEncoder !== "clip" : undefined,
  };
}

/** The folder `loraspec caption` works on: the prepared folder once prep has run, else the dataset. */
export function defaultCaptionDir(project: ProjectDataset): string | undefined {
  if (existsSync(join(project.preparedDir, MANIFEST_FILE))) return project.preparedDir;
  return project.datasetDir;
}

/**
 * The images a run trains on: the prepared folder once `loraspec prep` has run (deduplicated,
 * cropped and resized to the contract's resolution, captions beside them), else the dataset.
 */
export function trainingDatasetDir(projectDir: string, datasetDir: string): { dir: string; prepared: boolean } {
  const preparedDir = join(projectDir, PREPARED_DIR);
  return existsSync(join(preparedDir, MANIFEST_FILE)) ? { dir: preparedDir, prepared: true } : { dir: datasetDir, prepared: false };
}

/**
 * What a run trains on (trainingDatasetDir) with the crop prep used for it (its manifest's
 * settings.crop): what lint checks `dataset.crop` against (core lint/crop-rules.ts).
 */
export async function trainingDataOf(projectDir: string, datasetDir: string): Promise<{ dir: string; prepared: boolean; crop?: "center" | "attention" }> {
  const found = trainingDatasetDir(projectDir, datasetDir);
  if (!found.prepared) return found;
  const manifest = await readPrepManifest({ path: join(found.dir, MANIFEST_FILE) });
  const crop = manifest?.settings.crop;
  return { ...found, crop: crop === "attention" ? "attention" : "center" };
}
