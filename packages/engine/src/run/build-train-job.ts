import { constants as fsConstants } from "node:fs";
import { resolveContractPath } from "../contract/contract-files.js";
import { copyFile, mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join, relative, resolve, isAbsolute } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { baseSource } from "@loraspec/core/contract/base-path.js";
import { loadFormsOf, type KohyaFluxRole } from "@loraspec/core/knowledge/base-load-forms.js";
import { kohyaFluxFilesOf } from "../project/base-load-form.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileFal } from "@loraspec/core/compile/fal/compile-fal.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import type { CompilePlan } from "@loraspec/core/trainers/compile-input.js";
import { listDatasetFiles } from "../dataset/list-dataset-files.js";
import { packZip } from "../dataset/pack-zip.js";
import { findWorkerRoot, workerPython } from "../worker/worker-paths.js";
import { defaultCacheDir, trainerPaths } from "../setup/trainer-install.js";
import { checkTrainerDevice } from "../setup/check-trainer-device.js";
import type { RunRecord } from "./run-store.js";
import type { TrainJob } from "./train-job.js";

export interface BuildTrainJobParams {
  contract: Contract;
  /** The contract's folder: dataset and local base paths resolve against it. */
  contractDir: string;
  plan: CompilePlan & { cost?: { usd?: number } };
  run: RunRecord;
  /** sha256 of the contract file, written into the LoRA's metadata by the built-in trainer. */
  contractHash?: string;
  /** The images to train on (default: the contract's dataset.path); see trainingDatasetDir. */
  datasetDir?: string;
  /** Where `loraspec setup` put a trainer checkout and venv (default: the loraspec cache). */
  trainerDir?: (trainer: "kohya" | "ai-toolkit") => { trainerDir: string; venvDir: string; tokenizerCacheDir?: string };
  /** loraspec's cache folder (default: $LORASPEC_CACHE_DIR or the platform's); torch.compile's caches persist under it. */
  cacheDir?: string;
  /** Checks the trainer's torch sees the GPUs before anything is copied (default: its venv's python; tests inject). */
  checkDevice?: typeof checkTrainerDevice;
}

/**
 * Where `loraspec setup kohya|ai-toolkit` installed the trainer: its manifest (which also finds a
 * --source checkout), else the install folder it would use ($LORASPEC_<NAME>_DIR or the cache).
 */
export function defaultTrainerDir(trainer: "kohya" | "ai-toolkit"): { trainerDir: string; venvDir: string; tokenizerCacheDir?: string } {
  return trainerPaths({ trainer });
}

/**
 * Turns a contract + plan into the job a run executes, for the contract's trainer: the compiled
 * files (kohya TOMLs, ai-toolkit YAML, the worker request, the fal input and dataset ZIP), the
 * command, the output parser, where the LoRA will be, and how to resume.
 */
export async function buildTrainJob(params: BuildTrainJobParams): Promise<TrainJob> {
  const { contract, run, plan } = params;
  const datasetDir = params.datasetDir ?? resolveContractPath(params.contractDir, contract.dataset.path);
  const outputDir = join(run.runDir, "output");
  const regDir = contract.dataset.reg_path ? resolveContractPath(params.contractDir, contract.dataset.reg_path) : undefined;
  const trainer = contract.trainer.name;
  if (trainer === "diffusers") {
    const requestFile = join(run.runDir, "worker-request.json");
    const compiled = compileDiffusers(contract, plan, { datasetDir, regDir, outputDir, basePath: resolveBasePath(contract, params.contractDir), cacheDir: params.cacheDir ?? defaultCacheDir() }, { contractHash: params.contractHash });
    const request = compiled.request;
    return {
      kind: "process",
      trainer,
      command: workerPython(),
      args: ["-u", "-m", "loraspec_worker", "train", requestFile],
      cwd: join(findWorkerRoot(), "worker"),
      files: { "worker-request.json": `${JSON.stringify(request, null, 2)}\n` },
      parser: "worker-jsonl",
      output: join(outputDir, `${request.name}.safetensors`),
      resume: { kind: "worker-request", requestFile },
      totalSteps: request.steps,
      warnings: compiled.warnings.map((w) => ({ code: w.code, message: `${w.field}: ${w.message}` })),
      maxWalltimeHours: contract.limits?.max_walltime_hours,
      precision: contract.hyperparameters.precision,
      outputFormat: contract.output.format,
    };
  }
  if (trainer === "kohya" || trainer === "ai-toolkit") {
    const dirs = (params.trainerDir ?? defaultTrainerDir)(trainer);
    await (params.checkDevice ?? checkTrainerDevice)({ trainer, venvDir: dirs.venvDir, gpus: contract.hardware.gpus, gpu: contract.hardware.gpu });
    // Trainers write into their dataset folder (ai-toolkit's .aitk_size.json, kohya's latent
    // caches): they get the run's own copy, never the user's folder.
    const runDataset = await copyDataset({ from: datasetDir, to: join(run.runDir, "dataset"), captionExtension: contract.captions.extension });
    const runReg = regDir ? await copyDataset({ from: regDir, to: join(run.runDir, "reg"), captionExtension: contract.captions.extension, field: "dataset.reg_path" }) : undefined;
    // contractDir and home: a local base.path opens from the contract's folder, not the trainer checkout (its cwd).
    const paths = { datasetDir: runDataset, regDir: runReg, datasetWritable: true, outputDir, configDir: run.runDir, contractDir: resolve(params.contractDir), home: homedir(), ...dirs, baseFiles: trainer === "kohya" ? await kohyaBaseFiles(contract, params.contractDir) : undefined };
    const compiled = trainer === "kohya" ? compileKohya(contract, plan, paths) : compileAiToolkit(contract, plan, paths);
    const files: Record<string, string> = {};
    for (const file of compiled.files) {
      const rel = isAbsolute(file.path) ? relative(run.runDir, file.path) : file.path;
      if (rel.startsWith("..")) throw new LoraspecError("E_INTERNAL", `compiled file ${file.path} is outside the run folder`);
      files[rel] = file.content;
    }
    const [command, ...args] = compiled.command;
    const lora = compiled.outputs.lora;
    return {
      kind: "process",
      trainer,
      command: command!,
      args,
      cwd: compiled.cwd,
      files,
      parser: trainer,
      output: lora,
      resume:
        trainer === "kohya"
          ? { kind: "kohya-state", outputDir, outputName: basename(lora).replace(/\.safetensors$/, "") }
          : { kind: "automatic" },
      totalSteps: plan.steps,
      maxWalltimeHours: contract.limits?.max_walltime_hours,
      precision: contract.hyperparameters.precision,
      outputFormat: contract.output.format,
      ...(compiled.outputs.samples ? { samples: compiled.outputs.samples } : {}),
    };
  }
  if (trainer === "fal") {
    // The URL is not known until the upload: compile with a placeholder, the runner fills it in.
    const compiled = compileFal(contract, plan, { zipUrl: "" });
    const zip = await packZip({ dir: datasetDir, out: join(run.runDir, "dataset.zip"), captionExtension: contract.captions.extension });
    return {
      kind: "fal",
      trainer: "fal",
      endpoint: compiled.endpoint,
      input: compiled.input,
      archive: { path: zip.out, field: compiled.record.zipField },
      cost: { estimateUsd: plan.cost?.usd, maxCostUsd: contract.limits?.max_cost_usd },
      totalSteps: plan.steps,
      outputFormat: contract.output.format,
    };
  }
  throw new LoraspecError("E_UNKNOWN_TRAINER", `unknown trainer "${String(trainer)}"`, { field: "trainer.name" });
}

/**
 * base.path as the worker should open it (core contract/base-path.ts, the rule check's preflight and
 * the compilers use): a local folder or file (./x, ../x, /x, ~/x) made absolute, `~` expanded and
 * relative ones against the contract's folder; a Hugging Face id (org/name) as it is; absent: the
 * model's official repo.
 */
function resolveBasePath(contract: Contract, contractDir: string): string {
  const path = contract.base.path ?? getBaseModel(contract.base.model)?.hfRepo;
  if (!path) throw new LoraspecError("E_UNKNOWN_BASE_MODEL", `unknown base model "${contract.base.model}"`, { field: "base.model" });
  const source = baseSource(path, { contractDir: resolve(contractDir), home: homedir() });
  return source.kind === "local" ? source.path : source.id;
}

/**
 * kohya FLUX.1: the BFL single file of each role in base.path's folder, resolved as check's preflight does
 * (project/preflight-base.ts kohyaFluxFilesOf), so the args TOML names the files check verified; a role
 * with no file refuses the run (check's base-files-missing). undefined for other bases or a hub id.
 */
async function kohyaBaseFiles(contract: Contract, contractDir: string): Promise<Partial<Record<KohyaFluxRole, string>> | undefined> {
  const model = getBaseModel(contract.base.model);
  if (!model || loadFormsOf("kohya", model.family)?.forms.includes("kohya-flux-files") !== true || contract.base.path === undefined) return undefined;
  const source = baseSource(contract.base.path, { contractDir: resolve(contractDir), home: homedir() });
  if (source.kind !== "local") return undefined; // the compiler refuses a hub id (kohya-flux-single-files)
  const found = await kohyaFluxFilesOf(model.id, source.path);
  if (found.missing.length > 0) {
    throw new LoraspecError("E_FILE_NOT_FOUND", `kohya sd-scripts loads ${model.label} from BFL single files; ${found.dir} has no ${found.missing.join(", ")} file`, {
      field: "base.path",
      hint: "Run `loraspec check`: its base-files-missing finding names the files each role is accepted under.",
    });
  }
  return found.files;
}

/** Copies a dataset's images and caption sidecars (keeping sub-folders) into a run-owned folder. */
async function copyDataset(params: { from: string; to: string; captionExtension?: string; field?: string }): Promise<string> {
  const files = await listDatasetFiles({ dir: params.from, captionExtension: params.captionExtension });
  if (files.images.length === 0) throw new LoraspecError("E_DATASET_EMPTY", `no images in ${params.from}`, { file: params.from, field: params.field ?? "dataset.path" });
  for (const rel of [...files.images, ...files.captions]) {
    const target = join(params.to, rel);
    await mkdir(dirname(target), { recursive: true });
    // A copy-on-write clone where the filesystem has it, else a plain copy.
    await copyFile(join(params.from, rel), target, fsConstants.COPYFILE_FICLONE);
  }
  return params.to;
}
