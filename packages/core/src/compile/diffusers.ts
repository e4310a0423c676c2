import type { Contract } from "../contract/schema.js";
import { LoraspecError } from "../errors.js";
import type { BaseModelId } from "../knowledge/base-models.js";
import { BUILTIN_TRAINER, builtinArchOf, type WorkerArch } from "../knowledge/builtin-trainer.js";
import { resolveTrainSettings, type SettingChoice } from "../plan/train-settings.js";
import { resolveTraining, type CompilePlan } from "../trainers/compile-input.js";

export type { WorkerArch } from "../knowledge/builtin-trainer.js";

const WORKER_OPTIMIZERS: ReadonlySet<string> = new Set(BUILTIN_TRAINER.optimizers);
const WORKER_FALLBACKS: ReadonlySet<string> = new Set(BUILTIN_TRAINER.oomFallbacks);

export interface DiffusersPaths {
  /** The prepared dataset folder (images + .txt captions), absolute. */
  datasetDir: string;
  /** Checkpoints and the final LoRA go here, absolute. */
  outputDir: string;
  /** The regularisation images (dataset.reg_path), absolute. */
  regDir?: string;
  /** The base weights as the worker should open them: a local path already resolved, or a HF id. Defaults to base.path, else the model's HF repo. */
  basePath?: string;
}

/** The worker's train request; field names as worker/loraspec_worker/train.py reads them. */
export interface DiffusersTrainRequest {
  base: string;
  arch: WorkerArch;
  dataset: string;
  output_dir: string;
  name: string;
  resolution: number;
  rank: number;
  alpha: number;
  learning_rate: number;
  steps: number;
  batch_size: number;
  gradient_accumulation: number;
  optimizer: string;
  lr_scheduler: string;
  warmup_steps: number;
  precision: string;
  gradient_checkpointing: boolean;
  /**
   * Regional torch.compile of the repeated blocks. Set by the plan; left out (the worker decides on
   * the device it finds) when the plan turns it on but hardware.gpu names no known CUDA GPU.
   */
  compile?: boolean;
  /** Whole-step CUDA graph: SDXL only, without checkpointing, accumulation 1, optimizer adamw; absent as compile. */
  cuda_graphs?: boolean;
  /** The frozen block linears in fp8 e4m3 with per-row scales, or bf16. */
  quantize: "none" | "fp8";
  /** fp8 GEMMs for the frozen base (float8 tensor cores); absent as compile. */
  fp8_matmul?: boolean;
  /** Data-parallel processes, one per GPU of the host (hardware.gpus); absent for one. */
  num_processes?: number;
  save_every: number;
  seed: number;
  trigger_word: string;
  /** Regularisation images: their captions are never given the trigger (train.py reg_dataset). */
  reg_dataset?: string;
  /** Caption sidecar extension, with the dot. */
  caption_extension: string;
  guidance_scale?: number;
  contract_hash?: string;
  resume_from?: string;
  failure: { loss_spike_factor: number; on_oom: "fail" | "fallback"; oom_fallbacks: string[] };
}

export interface DiffusersCompiled {
  trainer: "diffusers";
  /** `python -m loraspec_worker <command>` */
  command: "train";
  request: DiffusersTrainRequest;
  /** Contract settings the built-in trainer does not honour, said out loud. */
  warnings: { code: string; message: string; field: string }[];
  /** Why gradient_checkpointing, compile, cuda_graphs and quantize are what they are (plan/train-settings.ts). */
  choices: SettingChoice[];
}

/**
 * Compiles a contract (+ plan) into the built-in trainer's request. Pure: paths arrive resolved.
 * Refuses what the worker cannot do (a model it does not train, an int8/nf4 base, lion8bit)
 * instead of silently training something else.
 */
export function compileDiffusers(
  contract: Contract,
  plan: CompilePlan,
  paths: DiffusersPaths,
  options: { contractHash?: string; resumeFrom?: string } = {},
): DiffusersCompiled {
  if (!(contract.base.model in BUILTIN_TRAINER.bases)) {
    throw new LoraspecError("E_UNKNOWN_BASE_MODEL", `Unknown base model "${contract.base.model}".`, { field: "base.model" });
  }
  const { arch, base, record } = builtinArchOf(contract.base.model);
  if (!record.trains) {
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `The built-in diffusers trainer cannot train ${contract.base.model}: ${record.reason}.`, {
      field: "trainer.name",
      hint: `Use ${record.instead}.`,
    });
  }
  const hp = contract.hyperparameters;
  if (!WORKER_OPTIMIZERS.has(hp.optimizer)) {
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `The built-in trainer has no ${hp.optimizer} optimizer.`, {
      field: "hyperparameters.optimizer",
      hint: `Use one of: ${[...WORKER_OPTIMIZERS].join(", ")}.`,
    });
  }
  if (contract.base.quantize !== "none" && contract.base.quantize !== "fp8") {
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `The built-in trainer holds the base in bf16 or fp8, not ${contract.base.quantize}.`, {
      field: "base.quantize",
      hint: "Set base.quantize: fp8 (or none), or train with ai-toolkit for int8/nf4.",
    });
  }
  const r = resolveTraining(contract, plan);
  const settings = resolveTrainSettings(contract, { steps: r.steps, resolution: r.resolution });
  const warnings: DiffusersCompiled["warnings"] = [];
  if (contract.dataset.aspect === "buckets") {
    warnings.push({ code: "W_NO_BUCKETS", field: "dataset.aspect", message: "the built-in trainer center-crops every image to a square; aspect buckets are not used" });
  }
  if (contract.dataset.crop === "attention") {
    warnings.push({ code: "W_CENTER_CROP", field: "dataset.crop", message: "the built-in trainer uses center crops; attention crops are not implemented" });
  }
  if (contract.failure.on_divergence !== "stop") {
    warnings.push({
      code: "W_DIVERGENCE_STOPS",
      field: "failure.on_divergence",
      message: `the built-in trainer stops on divergence (on_divergence: ${contract.failure.on_divergence} is treated as stop; resume from the last checkpoint by hand)`,
    });
  }
  if (base.note) warnings.push({ code: "W_DISTILLED_BASE", field: "base.model", message: base.note });
  const fallbacks = contract.failure.oom_fallbacks.filter((f) => WORKER_FALLBACKS.has(f));
  const dropped = contract.failure.oom_fallbacks.filter((f) => !WORKER_FALLBACKS.has(f));
  if (contract.failure.on_oom === "fallback" && dropped.length) {
    warnings.push({ code: "W_OOM_FALLBACK_UNSUPPORTED", field: "failure.oom_fallbacks", message: `the built-in trainer cannot apply: ${dropped.join(", ")}` });
  }

  const request: DiffusersTrainRequest = {
    base: paths.basePath ?? contract.base.path ?? r.base.hfRepo,
    arch,
    dataset: paths.datasetDir,
    output_dir: paths.outputDir,
    name: contract.name,
    resolution: r.resolution,
    rank: r.rank,
    alpha: r.alpha,
    learning_rate: r.learningRate,
    steps: r.steps,
    batch_size: r.batchSize,
    gradient_accumulation: r.gradientAccumulation,
    optimizer: hp.optimizer,
    lr_scheduler: hp.lr_scheduler,
    warmup_steps: hp.warmup_steps,
    precision: hp.precision,
    gradient_checkpointing: settings.gradientCheckpointing,
    ...(settings.compile && !settings.cudaKnown ? {} : { compile: settings.compile }),
    ...(settings.cudaGraphs && !settings.cudaKnown ? {} : { cuda_graphs: settings.cudaGraphs }),
    quantize: settings.quantize === "fp8" ? "fp8" : "none",
    ...(settings.fp8Matmul && !settings.cudaKnown ? {} : { fp8_matmul: settings.fp8Matmul }),
    save_every: r.saveEvery,
    seed: hp.seed,
    trigger_word: contract.trigger.word,
    caption_extension: contract.captions.extension,
    failure: { loss_spike_factor: contract.failure.loss_spike_factor, on_oom: contract.failure.on_oom, oom_fallbacks: fallbacks },
  };
  if (paths.regDir) request.reg_dataset = paths.regDir;
  if (contract.hardware.kind === "local" && contract.hardware.gpus > 1) request.num_processes = contract.hardware.gpus;
  if (base.trainGuidance !== undefined && arch === "flux1") request.guidance_scale = base.trainGuidance;
  if (options.contractHash) request.contract_hash = options.contractHash;
  if (options.resumeFrom) request.resume_from = options.resumeFrom;
  return { trainer: "diffusers", command: "train", request, warnings, choices: settings.choices };
}
