import { aiToolkitNetwork } from "./ai-toolkit-network.js";
import { stringify as stringifyYaml } from "yaml";
import { resolveBuckets } from "../../plan/buckets.js";
import type { Contract } from "../../contract/schema.js";
import { LoraspecError } from "../../errors.js";
import { assertSettingsAccepted } from "../trainer-capabilities.js";
import { gradientCheckpointingOf } from "../../plan/train-settings.js";
import { AI_TOOLKIT_PIN } from "../../trainers/pins.js";
import { assertTrainerSupports } from "../../trainers/support.js";
import { scheduleOptionsFor } from "../../trainers/lr-schedules.js";
import { aiToolkitTargets, targetsFix, type AiToolkitTargets } from "../network-targets.js";
import { trainerRuns } from "../../knowledge/trainers.js";
import { baseQuantizeOf } from "../../contract/base-quantize.js";
import { checkpointsOf } from "../../plan/checkpoints.js";
import { aiToolkitRegularisers } from "../regularisers.js";
import { joinPath, resolveBasePath, resolveTraining, versionWarnings, type CompiledFile, type CompilePaths, type CompilePlan, type ResolvedTraining } from "../../trainers/compile-input.js";
import { SAMPLE_FILE_NAMING, type SampleWatch } from "../../trainers/sample-files.js";
import { aiToolkitSampleBlock, aiToolkitSampleItems } from "./ai-toolkit-samples.js";
import { AI_TOOLKIT_DTYPES, AI_TOOLKIT_OPTIMIZERS, AI_TOOLKIT_PROFILES, AI_TOOLKIT_QTYPES, type AiToolkitProfile } from "./ai-toolkit-profiles.js";

export interface AiToolkitCompiled {
  trainer: "ai-toolkit";
  arch: string;
  /** The job config as an object (what `jobYaml` serializes). */
  job: Record<string, unknown>;
  jobYaml: string;
  /** `python run.py <job.yaml>`, run with cwd = `cwd`. */
  command: string[];
  cwd: string;
  files: CompiledFile[];
  /** ai-toolkit writes to <training_folder>/<name>/ (trainers.md §3.5). */
  outputs: { lora: string; checkpointPattern: string; jobDir: string; samples?: SampleWatch };
  /**
   * What ai-toolkit writes into datasetDir (seen in a recorded run): always `.aitk_size.json`,
   * plus `_latent_cache/` when caching latents to disk and `_text_embedding_cache/` when caching
   * text embeddings. Give it a copy of the user's images.
   */
  writesIntoDataset: string[];
  /** Things the user should know (e.g. the contract names another trainer version than the pin). */
  warnings: string[];
}

/**
 * Compiles a contract (+ plan) into an ai-toolkit job YAML for the pinned commit (trainers.md §3).
 * Pure: the caller writes `files` and runs `command`.
 */
export function compileAiToolkit(contract: Contract, plan: CompilePlan, paths: CompilePaths): AiToolkitCompiled {
  const profile = AI_TOOLKIT_PROFILES[contract.base.model];
  assertTrainerSupports("ai-toolkit", contract.base.model, profile !== undefined);
  if (!profile) throw new LoraspecError("E_INTERNAL", `No ai-toolkit profile for ${contract.base.model}.`);
  const r = resolveTraining(contract, plan);
  const hp = contract.hyperparameters;
  assertSettingsAccepted(contract);
  const textEmbeddings = profile.cacheTextEmbeddings && hp.cache_text_encoder_outputs;
  const regularisers = aiToolkitRegularisers(contract);
  const dtype = AI_TOOLKIT_DTYPES[hp.precision] ?? { train: "bf16", save: "bf16" };
  const configDir = paths.configDir ?? paths.outputDir;
  const trainerDir = paths.trainerDir ?? "ai-toolkit";
  const jobPath = joinPath(configDir, "job.yaml");

  const model = aiToolkitModel(contract, profile, paths, r);
  const datasets = aiToolkitDatasets(contract, paths, r, regularisers.dataset, textEmbeddings);
  const targetOptions = aiToolkitTargetOptions(contract);
  const sampleBlock = aiToolkitSampleBlock(contract, r.resolution, profile.noiseScheduler);
  const process = {
    type: "sd_trainer",
    training_folder: paths.outputDir,
    // No `device`: SDTrainer trains on accelerate's device (BaseSDTrainProcess.py L105-106) and never reads it.
    trigger_word: contract.trigger.word,
    // Read by BaseTrainProcess (torch/cuda/random seeds); ai-toolkit has no train.seed.
    training_seed: hp.seed,
    // network.type (ai-toolkit-network.ts) and network.targets / network.modules: only_if_contains / ignore_if_contains (compile/network-targets.ts).
    network: { ...aiToolkitNetwork(contract.network, r.rank, r.alpha), ...targetOptions },
    // Every checkpoint the plan counts is kept (plan/checkpoints.ts): ai-toolkit deletes all but the newest
    // max_step_saves_to_keep step saves (its default 5), and an earlier LoRA is what save_every promises.
    save: { dtype: dtype.save, save_every: r.saveEvery, max_step_saves_to_keep: checkpointsOf(contract, r.steps, r.saveEvery), save_format: "safetensors", push_to_hub: false },
    datasets,
    train: aiToolkitTrain(contract, profile, r, dtype.train, regularisers.train),
    model,
    sample: sampleBlock,
  };
  const job = {
    job: "extension",
    config: { name: contract.name, process: [process] },
    meta: { name: "[name]", version: "1.0", loraspec: { contract: contract.name, trainer: `ai-toolkit@${AI_TOOLKIT_PIN.commit.slice(0, 7)}` } },
  };
  const jobYaml =
    `# ai-toolkit job for ostris/ai-toolkit ${AI_TOOLKIT_PIN.version} (${AI_TOOLKIT_PIN.commit.slice(0, 7)}), arch ${profile.arch}\n` +
    `# Written by loraspec from ${contract.name}; edit the contract, not this file.\n` +
    stringifyYaml(job, { lineWidth: 0 });
  const python = paths.venvDir ? joinPath(paths.venvDir, "bin", "python") : "python";
  return {
    trainer: "ai-toolkit",
    arch: profile.arch,
    job,
    jobYaml,
    command: [python, joinPath(trainerDir, "run.py"), jobPath],
    cwd: trainerDir,
    files: [{ name: "job.yaml", path: jobPath, content: jobYaml }],
    warnings: versionWarnings(contract.trainer.version, AI_TOOLKIT_PIN.version),
    writesIntoDataset: aiToolkitWritesIntoDataset(contract, paths, textEmbeddings),
    outputs: aiToolkitOutputs(contract, paths, r, sampleBlock),
  };
}

/** The job's `model:` block: the base, its arch and options, quantization and layer offloading. */
function aiToolkitModel(contract: Contract, profile: AiToolkitProfile, paths: CompilePaths, r: ResolvedTraining): Record<string, unknown> {
  const model: Record<string, unknown> = {
    name_or_path: resolveBasePath(contract.base.path, paths) ?? r.base.hfRepo,
    arch: profile.arch,
    ...profile.model,
  };
  // The contract decides; lint warns when an unquantized base will not fit the VRAM.
  const quantize = baseQuantizeOf(contract);
  if (quantize === "none") {
    model.quantize = false;
    model.quantize_te = false;
  } else {
    Object.assign(model, { quantize: true, qtype: AI_TOOLKIT_QTYPES.map[quantize], quantize_te: true, qtype_te: "qfloat8" });
  }
  // hardware.block_swap: ai-toolkit offloads a share of the transformer's layers (knowledge/block-swap.ts).
  const swap = contract.hardware.block_swap ?? 0;
  if (swap > 0) Object.assign(model, { layer_offloading: true, layer_offloading_transformer_percent: Math.min(1, Math.round((swap / r.base.blocks) * 100) / 100) });
  return model;
}

/** The job's `datasets:` list: the images, and the regularisation images when there are any. */
function aiToolkitDatasets(contract: Contract, paths: CompilePaths, r: ResolvedTraining, regularisers: Record<string, unknown>, textEmbeddings: boolean) {
  const hp = contract.hyperparameters;
  const buckets = resolveBuckets(contract, r.resolution);
  const datasetEntry = (folder: string, repeats: number) => ({
    folder_path: folder,
    // ai-toolkit's caption_ext has no dot.
    caption_ext: contract.captions.extension.replace(/^\./, ""),
    ...regularisers,
    // _latent_cache/ goes beside the images: only into a folder loraspec owns; else in memory.
    ...(hp.cache_latents ? (paths.datasetWritable ? { cache_latents_to_disk: true } : { cache_latents: true }) : {}),
    ...(textEmbeddings ? { cache_text_embeddings: true } : {}),
    // Every training resolution (dataset.buckets.resolutions + dataset.resolution): ai-toolkit trains each image at each.
    resolution: buckets.resolutions,
    buckets: contract.dataset.aspect === "buckets",
    // ai-toolkit's buckets are its own size list scaled per resolution, on the model's own divisibility: it overwrites
    // bucket_tolerance when it loads the dataset (lint/trainer-rules.ts: dataset.buckets.step is ignored), so none is written.
    num_repeats: repeats,
  });
  return [
    datasetEntry(paths.datasetDir, r.repeats),
    // Regularisation images (dataset.reg_path): ai-toolkit adds the trigger word only to
    // captions of non-reg batches (BaseSDTrainProcess: add_if_not_present=not is_reg).
    ...(paths.regDir ? [{ ...datasetEntry(paths.regDir, 1), is_reg: true }] : []),
  ];
}

/** network.targets / network.modules as the network block's options; what ai-toolkit cannot express is refused. */
function aiToolkitTargetOptions(contract: Contract): AiToolkitTargets {
  const targets = aiToolkitTargets(contract);
  if (targets.refusal) throw new LoraspecError("E_TRAINER_UNSUPPORTED", `ai-toolkit: ${targets.refusal}.`, { field: contract.network.modules ? "network.modules" : "network.targets", hint: targetsFix(contract, (t) => trainerRuns(t, contract.base.model)) });
  return targets.options;
}

/** The job's `train:` block: batch, steps, optimizer, schedule, dtype, the profile's options and the regularisers. */
function aiToolkitTrain(contract: Contract, profile: AiToolkitProfile, r: ResolvedTraining, dtype: string, regularisers: Record<string, unknown>): Record<string, unknown> {
  const hp = contract.hyperparameters;
  return {
    batch_size: r.batchSize,
    steps: r.steps,
    // `gradient_accumulation` only: setting both it and the legacy key >1 is an error.
    gradient_accumulation: r.gradientAccumulation,
    train_unet: true,
    train_text_encoder: false,
    gradient_checkpointing: gradientCheckpointingOf(contract),
    noise_scheduler: profile.noiseScheduler,
    optimizer: AI_TOOLKIT_OPTIMIZERS.map[hp.optimizer]!,
    lr: r.learningRate,
    // The option (and params) that make ai-toolkit's curve the contract's (trainers/lr-schedules.ts):
    // its linear rises from 1/3 by default, its constant_with_warmup warms up 1000 steps unless told.
    ...scheduleOptionsFor("ai-toolkit", { scheduler: hp.lr_scheduler, warmupSteps: hp.warmup_steps, steps: r.steps, gpus: contract.hardware.gpus }),
    dtype,
    // The baseline render before step 0 only when the contract asks for it (samples.first).
    skip_first_sample: !(contract.samples.every > 0 && contract.samples.first === true),
    // samples off: no render at all, not even ai-toolkit's end-of-run one (ai-toolkit-samples.ts).
    ...(contract.samples.every > 0 ? {} : { disable_sampling: true }),
    ...profile.train,
    ...regularisers,
  };
}

/** What ai-toolkit writes beside the images (see AiToolkitCompiled.writesIntoDataset). */
function aiToolkitWritesIntoDataset(contract: Contract, paths: CompilePaths, textEmbeddings: boolean): string[] {
  return [
    ".aitk_size.json",
    ...(contract.hyperparameters.cache_latents && paths.datasetWritable ? ["_latent_cache/"] : []),
    // Text embeddings are only ever cached to disk, beside the images (toolkit/dataloader_mixins.py).
    ...(textEmbeddings ? ["_text_embedding_cache/"] : []),
  ];
}

function aiToolkitOutputs(contract: Contract, paths: CompilePaths, r: ResolvedTraining, sampleBlock: Record<string, unknown>): AiToolkitCompiled["outputs"] {
  const jobDir = joinPath(paths.outputDir, contract.name);
  const items = aiToolkitSampleItems(sampleBlock, contract.trigger.word);
  return {
    lora: joinPath(jobDir, `${contract.name}.safetensors`),
    // {name}_{step:09d}.safetensors (§3.5).
    checkpointPattern: joinPath(jobDir, `${contract.name}_{step:09d}.safetensors`),
    jobDir,
    // The sample images ai-toolkit renders, as `sample` events (trainers/sample-files.ts); none to watch with samples off.
    ...(items.length > 0 ? { samples: { naming: "ai-toolkit" as const, dir: joinPath(jobDir, SAMPLE_FILE_NAMING["ai-toolkit"].folder), items, totalSteps: r.steps } } : {}),
  };
}
