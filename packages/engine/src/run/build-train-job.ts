import { homedir } from "node:os";
import { basename, join, relative, resolve, isAbsolute } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileFal } from "@loraspec/core/compile/fal/compile-fal.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import type { CompilePlan } from "@loraspec/core/trainers/compile-input.js";
import { zipDataset } from "../fal/zip-dataset.js";
import { findWorkerRoot, workerPython } from "../worker/worker-paths.js";
import type { RunRecord } from "./run-store.js";
import type { TrainJob } from "./train-job.js";

export interface BuildTrainJobParams {
  contract: Contract;
  /** The contract's folder: dataset and local base paths resolve against it. */
  contractDir: string;
  plan: CompilePlan & { cost?: { usd?: number } };
  run: RunRecord;
  /** Where `loraspec setup` put a trainer checkout and venv (default: the loraspec cache). */
  trainerDir?: (trainer: "kohya" | "ai-toolkit") => { trainerDir: string; venvDir: string };
}

/** Where `loraspec setup kohya|ai-toolkit` installs: $LORASPEC_<NAME>_DIR, else ~/.cache/loraspec/<name>. */
export function defaultTrainerDir(trainer: "kohya" | "ai-toolkit"): { trainerDir: string; venvDir: string } {
  const env = process.env[`LORASPEC_${trainer.toUpperCase().replace("-", "_")}_DIR`];
  const root = env ? resolve(env) : join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "loraspec", trainer);
  return { trainerDir: root, venvDir: join(root, ".venv") };
}

/**
 * Turns a contract + plan into the job a run executes, for the contract's trainer: the compiled
 * files (kohya TOMLs, ai-toolkit YAML, the worker request, the fal input and dataset ZIP), the
 * command, the output parser, where the LoRA will be, and how to resume.
 */
export async function buildTrainJob(params: BuildTrainJobParams): Promise<TrainJob> {
  const { contract, run, plan } = params;
  const datasetDir = resolve(params.contractDir, contract.dataset.path);
  const outputDir = join(run.runDir, "output");
  const trainer = contract.trainer.name;
  if (trainer === "diffusers") {
    const requestFile = join(run.runDir, "worker-request.json");
    const request = workerTrainRequest({ contract, contractDir: params.contractDir, plan, datasetDir, outputDir });
    return {
      kind: "process",
      trainer,
      command: workerPython(),
      args: ["-u", "-m", "loraspec_worker", "train", requestFile],
      cwd: join(findWorkerRoot(), "worker"),
      files: { "worker-request.json": `${JSON.stringify(request, null, 2)}\n` },
      parser: "worker-jsonl",
      output: join(outputDir, "lora.safetensors"),
      resume: { kind: "worker-request", requestFile },
      totalSteps: request.steps as number,
      maxWalltimeHours: contract.limits?.max_walltime_hours,
    };
  }
  if (trainer === "kohya" || trainer === "ai-toolkit") {
    const dirs = (params.trainerDir ?? defaultTrainerDir)(trainer);
    const paths = { datasetDir, outputDir, configDir: run.runDir, ...dirs };
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
    };
  }
  if (trainer === "fal") {
    // The URL is not known until the upload: compile with a placeholder, the runner fills it in.
    const compiled = compileFal(contract, plan, { zipUrl: "" });
    const zip = await zipDataset({ datasetDir, out: join(run.runDir, "dataset.zip"), captionExtension: contract.captions.extension });
    return {
      kind: "fal",
      trainer: "fal",
      endpoint: compiled.endpoint,
      input: compiled.input,
      archive: { path: zip.path, field: compiled.record.zipField },
      cost: { estimateUsd: plan.cost?.usd, maxCostUsd: contract.limits?.max_cost_usd },
      totalSteps: plan.steps,
    };
  }
  throw new LoraspecError("E_UNKNOWN_TRAINER", `unknown trainer "${String(trainer)}"`, { field: "trainer.name" });
}

/** The worker's architecture names (worker/loraspec_worker/train.py SUPPORTED_ARCHES / NOT_YET_ARCHES). */
const WORKER_ARCH: Record<string, string> = {
  sdxl: "sdxl",
  "flux1-dev": "flux1",
  "flux1-schnell": "flux1",
  "flux2-klein-4b": "flux2-klein",
  "flux2-klein-9b": "flux2-klein",
  "flux2-dev": "flux2-dev",
  "qwen-image": "qwen-image",
  "zimage-turbo": "zimage",
  "sd35-large": "sd35",
};

/**
 * The built-in worker's train request (fields as worker/loraspec_worker/train.py documents them).
 * Kept minimal here; packages/core/src/compile/diffusers.ts is the full compiler and replaces this
 * once it lands.
 */
export function workerTrainRequest(params: {
  contract: Contract;
  contractDir: string;
  plan: CompilePlan;
  datasetDir: string;
  outputDir: string;
}): Record<string, unknown> {
  const { contract, plan } = params;
  const hp = contract.hyperparameters;
  const model = getBaseModel(contract.base.model);
  const arch = WORKER_ARCH[contract.base.model];
  if (!model || !arch) throw new LoraspecError("E_UNKNOWN_BASE_MODEL", `unknown base model "${contract.base.model}"`, { field: "base.model" });
  const basePath = contract.base.path ?? model.hfRepo;
  // A local folder or file resolves against the contract; a hub id (org/name) stays as it is.
  const localBase = basePath.startsWith(".") || isAbsolute(basePath) ? resolve(params.contractDir, basePath) : basePath;
  const steps = plan.steps ?? hp.steps;
  const learningRate = plan.learningRate ?? hp.learning_rate;
  if (steps === undefined || learningRate === undefined) {
    throw new LoraspecError("E_CONTRACT_INVALID", "steps and learning rate must be resolved before training", { field: "hyperparameters" });
  }
  return {
    base: localBase,
    arch,
    dataset: params.datasetDir,
    output_dir: params.outputDir,
    name: "lora",
    resolution: plan.resolution ?? contract.dataset.resolution ?? model.nativeResolution,
    rank: hp.rank,
    alpha: hp.alpha ?? hp.rank,
    learning_rate: learningRate,
    steps,
    batch_size: hp.batch_size,
    gradient_accumulation: hp.gradient_accumulation,
    optimizer: hp.optimizer,
    lr_scheduler: hp.lr_scheduler,
    warmup_steps: hp.warmup_steps,
    precision: hp.precision,
    gradient_checkpointing: hp.gradient_checkpointing,
    save_every: plan.saveEvery ?? hp.save_every ?? 0,
    seed: hp.seed,
    trigger_word: contract.trigger.word,
    failure: {
      loss_spike_factor: contract.failure?.loss_spike_factor,
      on_oom: contract.failure?.on_oom,
      oom_fallbacks: contract.failure?.oom_fallbacks,
    },
  };
}
