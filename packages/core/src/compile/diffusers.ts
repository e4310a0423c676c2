import { LOKR_DEFAULT_FACTOR, lokrFactor } from "../knowledge/network-types.js";
import { LOSS_SPIKE_RULE } from "../knowledge/loss-spike.js";
import type { Contract } from "../contract/schema.js";
import { LoraspecError } from "../errors.js";
import { assertSettingsAccepted } from "./trainer-capabilities.js";
import { getBaseModel, type BaseModelId } from "../knowledge/base-models.js";
import { BUILTIN_TRAINER, builtinArchOf, type BuiltinFallback } from "../knowledge/builtin-trainer.js";
import { resolveBuckets } from "../plan/buckets.js";
import { resolveTrainSettings, type SettingChoice } from "../plan/train-settings.js";
import { joinPath, resolveTraining, type CompilePlan } from "../trainers/compile-input.js";
import { scheduleOptionsFor } from "../trainers/lr-schedules.js";
import { resolveBuiltinTargets } from "./network-targets.js";
import { builtinRegulariserWarnings, builtinRegularisers } from "./regularisers.js";
import type { BuiltinSettings, DiffusersTrainRequest } from "./worker-request.js";
import { resolveSamples } from "./samples.js";
import { trainerFix } from "../trainers/support.js";

export type { BuiltinSettings, DiffusersTrainRequest } from "./worker-request.js";

export type { WorkerArch } from "../knowledge/builtin-trainer.js";

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
  /** loraspec's cache folder: torch.compile's caches and FA4's kernels persist under it (BUILTIN_TRAINER.compileCache.folder) when the run compiles or runs FA4. */
  cacheDir?: string;
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

/** Contract settings the built-in trainer does not honour, said out loud. */
export type DiffusersWarning = DiffusersCompiled["warnings"][number];

/**
 * Every training setting of the built-in trainer's request, resolved from the contract (+ plan):
 * the plan lists these (plan.workerSettings) and compileDiffusers writes them. Refuses what the
 * worker cannot do (a model it does not train, an int8/nf4 base, lion8bit) instead of silently
 * training something else.
 */
export function resolveBuiltinSettings(contract: Contract, plan: CompilePlan): { settings: BuiltinSettings; warnings: DiffusersWarning[]; choices: SettingChoice[]; base: BaseModelId } {
  if (!(contract.base.model in BUILTIN_TRAINER.bases)) {
    throw new LoraspecError("E_UNKNOWN_BASE_MODEL", `Unknown base model "${contract.base.model}".`, { field: "base.model" });
  }
  const { arch, base, record } = builtinArchOf(contract.base.model);
  if (!record.trains) {
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `The built-in diffusers trainer cannot train ${contract.base.model}: ${record.reason}.`, {
      field: "trainer.name",
      hint: trainerFix("diffusers", contract.base.model),
    });
  }
  const hp = contract.hyperparameters;
  assertSettingsAccepted(contract);
  const r = resolveTraining(contract, plan);
  const ts = resolveTrainSettings(contract, { steps: r.steps, resolution: r.resolution });
  const warnings: DiffusersWarning[] = [];
  if (contract.dataset.crop === "attention") {
    warnings.push({ code: "W_CENTER_CROP", field: "dataset.crop", message: "the built-in trainer uses center crops; attention crops are not implemented" });
  }
  if ((contract.failure.on_divergence ?? "stop") !== "stop") {
    warnings.push({
      code: "W_DIVERGENCE_STOPS",
      field: "failure.on_divergence",
      message: `the built-in trainer stops on divergence (on_divergence: ${contract.failure.on_divergence} is treated as stop; resume from the last checkpoint by hand)`,
    });
  }
  if (base.note) warnings.push({ code: "W_DISTILLED_BASE", field: "base.model", message: base.note });
  warnings.push(...builtinRegulariserWarnings(contract));
  const fixed = BUILTIN_TRAINER.fixed;
  const settings: BuiltinSettings = {
    arch,
    resolution: r.resolution,
    buckets: resolveBuckets(contract, r.resolution).buckets,
    rank: r.rank,
    alpha: r.alpha,
    learning_rate: r.learningRate,
    steps: r.steps,
    batch_size: r.batchSize,
    gradient_accumulation: r.gradientAccumulation,
    optimizer: hp.optimizer as BuiltinSettings["optimizer"],
    // The schedule model picks the built-in trainer's own options (or refuses what it cannot run).
    ...(scheduleOptionsFor("diffusers", { scheduler: hp.lr_scheduler, warmupSteps: hp.warmup_steps, steps: r.steps, gpus: contract.hardware.gpus }) as { lr_scheduler: BuiltinSettings["lr_scheduler"]; warmup_steps: number }),
    precision: hp.precision,
    gradient_checkpointing: ts.gradientCheckpointing,
    checkpointing_mode: ts.checkpointingMode === "selective" ? "selective" : "full",
    compile: ts.compile,
    cuda_graphs: ts.cudaGraphs,
    channels_last: ts.channelsLast,
    fp8_matmul: ts.fp8Matmul,
    attention: ts.attention,
    lora_compute: ts.loraCompute,
    sample_merge: ts.sampleMerge,
    quantize: ts.quantize === "fp8" ? "fp8" : "none",
    num_processes: contract.hardware.kind === "local" ? contract.hardware.gpus : 1,
    save_every: r.saveEvery,
    seed: hp.seed,
    prefix_trigger: fixed.prefix_trigger,
    train_text_encoder: fixed.train_text_encoder,
    guidance_scale: arch === "flux1" && base.trainGuidance !== undefined ? base.trainGuidance : fixed.noGuidance,
    max_sequence_length: fixed.max_sequence_length,
    // network.targets / network.modules, else the attention preset (compile/network-targets.ts).
    targets: resolveBuiltinTargets(contract, record.targets).patterns,
    ...builtinRegularisers(contract),
    network_type: contract.network.type,
    // LoKr's factor; the other kinds have none (lint network-factor-unused names a stray one).
    network_factor: contract.network.type === "lokr" ? lokrFactor(contract.network.factor) : LOKR_DEFAULT_FACTOR.value,
  };
  return { settings, warnings, choices: ts.choices, base: contract.base.model };
}

/** Compiles a contract (+ plan) into the built-in trainer's request. Pure: paths arrive resolved. */
export function compileDiffusers(
  contract: Contract,
  plan: CompilePlan,
  paths: DiffusersPaths,
  options: { contractHash?: string; resumeFrom?: string } = {},
): DiffusersCompiled {
  const { settings, warnings, choices } = resolveBuiltinSettings(contract, plan);
  const fallbacks = contract.failure.oom_fallbacks.filter((f): f is BuiltinFallback => WORKER_FALLBACKS.has(f));
  const dropped = contract.failure.oom_fallbacks.filter((f) => !WORKER_FALLBACKS.has(f));
  if (contract.failure.on_oom === "fallback" && dropped.length) {
    warnings.push({ code: "W_OOM_FALLBACK_UNSUPPORTED", field: "failure.oom_fallbacks", message: `the built-in trainer cannot apply: ${dropped.join(", ")}` });
  }
  const request: DiffusersTrainRequest = {
    base: paths.basePath ?? contract.base.path ?? getBaseModel(contract.base.model)!.hfRepo,
    dataset: paths.datasetDir,
    output_dir: paths.outputDir,
    name: contract.name,
    trigger_word: contract.trigger.word,
    caption_extension: contract.captions.extension,
    ...settings,
    failure: {
      loss_spike_factor: contract.failure.loss_spike_factor,
      loss_spike_recent_steps: LOSS_SPIKE_RULE.recentSteps,
      loss_spike_baseline_steps: LOSS_SPIKE_RULE.baselineSteps,
      loss_spike_first_step: LOSS_SPIKE_RULE.firstStep,
      on_oom: contract.failure.on_oom ?? "fail",
      oom_fallbacks: fallbacks,
    },
  };
  if (paths.regDir) request.reg_dataset = paths.regDir;
  // torch.compile's caches and FA4's compiled kernels (BUILTIN_TRAINER.compileCache)
  if (paths.cacheDir && (settings.compile || settings.attention === "fa4")) request.compile_cache_dir = joinPath(paths.cacheDir, BUILTIN_TRAINER.compileCache.folder);
  const samples = resolveSamples(contract, settings.resolution);
  const sampleArches: readonly string[] = BUILTIN_TRAINER.sampleArches;
  if (samples && !sampleArches.includes(settings.arch)) {
    warnings.push({ code: "W_SAMPLES_UNSUPPORTED", field: "samples.every", message: `the built-in trainer renders samples for ${sampleArches.join(" and ")} only, not ${settings.arch}: no samples this run` });
  } else if (samples) request.samples = { every: samples.every, prompts: samples.prompts, seeds: samples.seeds, steps: samples.steps, guidance_scale: samples.guidance, first: samples.first, width: samples.width, height: samples.height };
  const hw = contract.hardware;
  if (hw.kind === "local" && hw.nodes > 1) request.nodes = { count: hw.nodes, rank: hw.node_rank, endpoint: hw.rendezvous! };
  if (options.contractHash) request.contract_hash = options.contractHash;
  if (options.resumeFrom) request.resume_from = options.resumeFrom;
  return { trainer: "diffusers", command: "train", request, warnings, choices };
}
