import { kohyaNetwork, kohyaTargetsRefusal } from "./kohya-network.js";
import type { Contract } from "../../contract/schema.js";
import { LoraspecError } from "../../errors.js";
import { gradientCheckpointingOf } from "../../plan/train-settings.js";
import { scheduleOptionsFor } from "../../trainers/lr-schedules.js";
import { kohyaNetworkArgs, targetsFix } from "../network-targets.js";
import { trainerRuns } from "../../knowledge/trainers.js";
import { joinPath, resolveBasePath, type CompilePaths, type CompilePlan, type ResolvedTraining } from "../../trainers/compile-input.js";
import { defaultKohyaFluxFiles } from "../../knowledge/base-load-forms.js";
import { FLUX_BLOCK_SWAP_BY_VRAM, KOHYA_OPTIMIZERS, kohyaSingleFilesRefusal, type KohyaProfile } from "./kohya-profiles.js";

/** The sections of sd-scripts' args TOML (`--config_file`), one builder each (trainers.md §2). */
export type TomlValue = string | number | boolean | string[] | number[];
export type Section = Record<string, TomlValue>;

/** mixed_precision (args TOML and accelerate's flag): fp32 is "no". */
export function kohyaMixedPrecision(contract: Contract): string {
  const precision = contract.hyperparameters.precision;
  return precision === "fp32" ? "no" : precision;
}

/** [model_arguments]: the base's weights (FLUX.1: its single files), fp8, the tokenizer cache; a non-FLUX profile's fixed options last. */
export function kohyaModelArguments(contract: Contract, profile: KohyaProfile, paths: CompilePaths, r: ResolvedTraining): Section {
  const model: Section = {};
  const basePath = resolveBasePath(contract.base.path, paths);
  if (profile.singleFiles) Object.assign(model, fluxModelFiles(contract, basePath, paths.baseFiles));
  else model.pretrained_model_name_or_path = basePath ?? r.base.hfRepo;
  if (contract.base.quantize === "fp8") model.fp8_base = true;
  if (paths.tokenizerCacheDir) model.tokenizer_cache_dir = paths.tokenizerCacheDir;
  // FLUX's fixed options go into [training_arguments] instead (kohyaTrainingArguments).
  if (profile.script !== "flux_train_network.py") Object.assign(model, profile.fixed);
  return model;
}

/** [network_arguments]: network.type, rank/alpha, and network.targets as sd-scripts' network_args. */
export function kohyaNetworkArguments(contract: Contract, profile: KohyaProfile, r: ResolvedTraining): Section {
  const network: Section = {
    ...kohyaNetwork(contract.network, profile.networkModule),
    network_dim: r.rank,
    network_alpha: r.alpha,
    // loraspec trains the denoiser only; required with cached text-encoder outputs (§2.12).
    network_train_unet_only: true,
  };
  // network.targets: sd-scripts' per-module-type dims (compile/network-targets.ts); what it cannot express is refused.
  const targets = kohyaNetworkArgs(contract);
  if (targets.refusal) {
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `kohya: ${targets.refusal}.`, { field: contract.network.modules ? "network.modules" : "network.targets", hint: targetsFix(contract, (t) => trainerRuns(t, contract.base.model)) });
  }
  const lycorisTargets = kohyaTargetsRefusal(contract.network);
  if (lycorisTargets) {
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `kohya: ${lycorisTargets.message}.`, { field: lycorisTargets.field, hint: "Leave network.targets / network.modules out with this network.type on Kohya, or use the built-in trainer." });
  }
  if (targets.args.length > 0) network.network_args = targets.args;
  return network;
}

/** [optimizer_arguments]: the optimizer, the learning rate and the schedule's options. */
export function kohyaOptimizerArguments(contract: Contract, r: ResolvedTraining): Section {
  const hp = contract.hyperparameters;
  const optimizer = KOHYA_OPTIMIZERS.map[hp.optimizer]!;
  return {
    optimizer_type: optimizer.type,
    learning_rate: r.learningRate,
    // The option that makes sd-scripts' curve the contract's (trainers/lr-schedules.ts).
    ...(scheduleOptionsFor("kohya", { scheduler: hp.lr_scheduler, warmupSteps: hp.warmup_steps, steps: r.steps, gpus: contract.hardware.gpus }) as Section),
    ...(optimizer.args ? { optimizer_args: [...optimizer.args] } : {}),
  };
}

/** [training_arguments]: steps, precision, caching, FLUX's fixed options, the regularisers and block swap. */
export function kohyaTrainingArguments(
  contract: Contract,
  plan: CompilePlan,
  paths: CompilePaths,
  profile: KohyaProfile,
  r: ResolvedTraining,
  regularisers: Record<string, unknown>,
): Section {
  const hp = contract.hyperparameters;
  const isFlux = profile.script === "flux_train_network.py";
  const training: Section = {
    // Optimizer steps; set explicitly so the default 1600 never applies (L-7).
    max_train_steps: r.steps,
    gradient_accumulation_steps: r.gradientAccumulation,
    mixed_precision: kohyaMixedPrecision(contract),
    seed: hp.seed,
    sdpa: true,
    ...(gradientCheckpointingOf(contract) ? { gradient_checkpointing: true } : {}),
    // *_to_disk writes .npz files beside the images: only into a folder loraspec owns.
    ...(hp.cache_latents ? { cache_latents: true, ...(paths.datasetWritable ? { cache_latents_to_disk: true } : {}) } : {}),
    ...(hp.cache_text_encoder_outputs
      ? { cache_text_encoder_outputs: true, ...(paths.datasetWritable ? { cache_text_encoder_outputs_to_disk: true } : {}) }
      : {}),
    ...(isFlux ? profile.fixed : {}),
    ...regularisers,
  };
  // hardware.block_swap is the contract's word (the VRAM model counts it); else the doc's table by VRAM.
  const swap = contract.hardware.block_swap ?? (isFlux ? (plan.blocksToSwap ?? blockSwapFor(contract.hardware.vram_gb)) : plan.blocksToSwap);
  if (swap !== undefined && swap > 0) {
    if (!isFlux) {
      throw new LoraspecError("E_TRAINER_UNSUPPORTED", "--blocks_to_swap exists only in sd-scripts' DiT scripts, not sdxl_train_network.py (L-10).", {
        field: contract.hardware.block_swap !== undefined ? "hardware.block_swap" : "plan.blocksToSwap",
      });
    }
    training.blocks_to_swap = swap;
  }
  return training;
}

/** [saving_arguments]: where and how often the LoRA is saved, with the state `--resume` needs. */
export function kohyaSavingArguments(contract: Contract, paths: CompilePaths, r: ResolvedTraining): Section {
  const precision = contract.hyperparameters.precision;
  return {
    output_dir: paths.outputDir,
    output_name: contract.name,
    save_model_as: "safetensors",
    save_precision: precision === "fp32" ? "float" : precision,
    save_every_n_steps: r.saveEvery,
    // Optimizer/scheduler state beside every save, so `--resume <dir>` can continue (§2.10).
    save_state: true,
  };
}

/**
 * The four BFL single files by role (knowledge/base-load-forms.ts): the names check's preflight found in the
 * folder (paths.baseFiles, passed by train's job), else each role's first accepted name.
 */
function fluxModelFiles(contract: Contract, path: string | undefined, found: CompilePaths["baseFiles"]): Section {
  const refusal = kohyaSingleFilesRefusal(contract.base.model, path);
  if (refusal || !path) throw new LoraspecError("E_TRAINER_UNSUPPORTED", refusal?.message ?? "base.path is required", { field: "base.path", hint: refusal?.hint });
  const isFile = path.endsWith(".safetensors") || path.endsWith(".sft");
  const dir = isFile ? path.slice(0, Math.max(path.lastIndexOf("/"), 0)) || "." : path;
  const files = { ...defaultKohyaFluxFiles(contract.base.model), ...found };
  return {
    pretrained_model_name_or_path: isFile ? path : joinPath(dir, files.transformer),
    clip_l: joinPath(dir, files.clip_l),
    t5xxl: joinPath(dir, files.t5xxl),
    ae: joinPath(dir, files.ae),
  };
}

function blockSwapFor(vramGb: number | undefined): number | undefined {
  if (vramGb === undefined) return undefined;
  return FLUX_BLOCK_SWAP_BY_VRAM.rows.find((row) => vramGb <= row.maxVramGb)?.blocksToSwap;
}
