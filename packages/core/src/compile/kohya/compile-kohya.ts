import { kohyaNetwork, kohyaTargetsRefusal } from "./kohya-network.js";
import { stringify as stringifyToml } from "smol-toml";
import { resolveBuckets } from "../../plan/buckets.js";
import type { Contract } from "../../contract/schema.js";
import { LoraspecError } from "../../errors.js";
import { assertSettingsAccepted } from "../trainer-capabilities.js";
import { gradientCheckpointingOf } from "../../plan/train-settings.js";
import { KOHYA_PIN, KOHYA_SCRIPT_FLAGS, type KohyaScript } from "../../trainers/pins.js";
import { assertTrainerSupports } from "../../trainers/support.js";
import { scheduleOptionsFor } from "../../trainers/lr-schedules.js";
import { kohyaNetworkArgs } from "../network-targets.js";
import { kohyaRegularisers } from "../regularisers.js";
import {
  joinPath,
  resolveBasePath,
  resolveTraining,
  versionWarnings,
  type CompiledFile,
  type CompilePaths,
  type CompilePlan,
} from "../../trainers/compile-input.js";
import { SAMPLE_FILE_NAMING, type SampleWatch } from "../../trainers/sample-files.js";
import { kohyaSamples } from "./kohya-samples.js";
import { FLUX_BLOCK_SWAP_BY_VRAM, FLUX_SINGLE_FILE_NAMES, KOHYA_IGNORED_TOGETHER, KOHYA_OPTIMIZERS, KOHYA_PROFILES, kohyaSingleFilesRefusal } from "./kohya-profiles.js";

export interface KohyaCompiled {
  trainer: "kohya";
  script: KohyaScript;
  /** Dataset config for `--dataset_config` (validated by sd-scripts' voluptuous schema). */
  datasetToml: string;
  /** Training args for `--config_file` (NOT validated by sd-scripts: we check every key here). */
  argsToml: string;
  /** The launch command, argv form (no shell). Run with cwd = `cwd`. */
  command: string[];
  cwd: string;
  files: CompiledFile[];
  /** Where the final LoRA and the step checkpoints will appear. */
  outputs: { lora: string; checkpointPattern: string; statePattern: string; samples?: SampleWatch };
  /** What the trainer will write into datasetDir (cache files beside the images). */
  writesIntoDataset: string[];
  /** Things the user should know (e.g. the contract names another trainer version than the pin). */
  warnings: string[];
}

type TomlValue = string | number | boolean | string[] | number[];
type Section = Record<string, TomlValue>;

/**
 * Compiles a contract (+ plan) into kohya sd-scripts' dataset TOML, args TOML and launch command
 * for the pinned version (trainers.md §2). Pure: the caller writes `files` and runs `command`.
 */
export function compileKohya(contract: Contract, plan: CompilePlan, paths: CompilePaths): KohyaCompiled {
  const profile = KOHYA_PROFILES[contract.base.model];
  assertTrainerSupports("kohya", contract.base.model, profile !== undefined);
  if (!profile) throw new LoraspecError("E_INTERNAL", `No kohya profile for ${contract.base.model}.`);
  const r = resolveTraining(contract, plan);
  const hp = contract.hyperparameters;
  const configDir = paths.configDir ?? paths.outputDir;
  const trainerDir = paths.trainerDir ?? "sd-scripts";
  const datasetPath = joinPath(configDir, "dataset.toml");
  const argsPath = joinPath(configDir, "args.toml");
  const isFlux = profile.script === "flux_train_network.py";

  // Dataset TOML ([general] / [[datasets]] / [[datasets.subsets]], trainers.md §2.4).
  const bucketed = contract.dataset.aspect === "buckets";
  const regularisers = kohyaRegularisers(contract);
  const buckets = resolveBuckets(contract, r.resolution);
  const subsets = [
    {
      image_dir: paths.datasetDir,
      num_repeats: r.repeats,
      // Explicit: sd-scripts' default is ".caption" (L-4); a missing .txt falls back to the trigger.
      caption_extension: contract.captions.extension,
      class_tokens: contract.trigger.word,
    },
    // Regularisation images (dataset.reg_path): sd-scripts trains them with their own
    // captions and repeats them to match the dataset's image count (trainers.md §2.4 is_reg).
    ...(paths.regDir ? [{ image_dir: paths.regDir, is_reg: true, num_repeats: 1, caption_extension: contract.captions.extension }] : []),
  ];
  const dataset = {
    general: {
      // Caption order matters (trigger first) and shuffling breaks text-encoder caching (§2.12):
      // hyperparameters.shuffle_tags keeps the trigger's tag first (lint/regulariser-rules.ts).
      shuffle_caption: regularisers.general.shuffle_caption,
      caption_extension: contract.captions.extension,
      ...regularisers.general,
    },
    // Multi-resolution (dataset.buckets.resolutions): one [[datasets]] per resolution over the same
    // images, so each image trains once per resolution, as ai-toolkit's resolution list does (§2.4).
    datasets: buckets.resolutions.map((resolution) => ({
      resolution,
      batch_size: r.batchSize,
      enable_bucket: bucketed,
      ...(bucketed
        ? {
            // The contract's bucket set (plan/buckets.ts is sd-scripts' make_bucket_resolutions).
            // No bucket_no_upscale: the built-in trainer also resizes each image to cover its
            // bucket, and with it sd-scripts ignores min/max_bucket_reso (KOHYA_IGNORED_TOGETHER).
            min_bucket_reso: buckets.minSide,
            max_bucket_reso: buckets.maxSide,
            bucket_reso_steps: buckets.step,
          }
        : {}),
      subsets,
    })),
  };

  assertSettingsAccepted(contract);
  const optimizer = KOHYA_OPTIMIZERS.map[hp.optimizer]!;
  const mixed = hp.precision === "fp32" ? "no" : hp.precision;
  const savePrecision = hp.precision === "fp32" ? "float" : hp.precision;

  const model: Section = {};
  const basePath = resolveBasePath(contract.base.path, paths);
  if (profile.singleFiles) Object.assign(model, fluxModelFiles(contract, basePath));
  else model.pretrained_model_name_or_path = basePath ?? r.base.hfRepo;
  if (contract.base.quantize === "fp8") model.fp8_base = true;
  if (paths.tokenizerCacheDir) model.tokenizer_cache_dir = paths.tokenizerCacheDir;

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
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `kohya: ${targets.refusal}.`, { field: contract.network.modules ? "network.modules" : "network.targets", hint: "Leave network.targets out (Kohya trains all-linear), or use the built-in trainer or ai-toolkit." });
  }
  const lycorisTargets = kohyaTargetsRefusal(contract.network);
  if (lycorisTargets) {
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `kohya: ${lycorisTargets.message}.`, { field: lycorisTargets.field, hint: "Leave network.targets / network.modules out with this network.type on Kohya, or use the built-in trainer." });
  }
  if (targets.args.length > 0) network.network_args = targets.args;

  const opt: Section = {
    optimizer_type: optimizer.type,
    learning_rate: r.learningRate,
    // The option that makes sd-scripts' curve the contract's (trainers/lr-schedules.ts).
    ...(scheduleOptionsFor("kohya", { scheduler: hp.lr_scheduler, warmupSteps: hp.warmup_steps, steps: r.steps, gpus: contract.hardware.gpus }) as Section),
    ...(optimizer.args ? { optimizer_args: [...optimizer.args] } : {}),
  };

  const training: Section = {
    // Optimizer steps; set explicitly so the default 1600 never applies (L-7).
    max_train_steps: r.steps,
    gradient_accumulation_steps: r.gradientAccumulation,
    mixed_precision: mixed,
    seed: hp.seed,
    sdpa: true,
    ...(gradientCheckpointingOf(contract) ? { gradient_checkpointing: true } : {}),
    // *_to_disk writes .npz files beside the images: only into a folder loraspec owns.
    ...(hp.cache_latents ? { cache_latents: true, ...(paths.datasetWritable ? { cache_latents_to_disk: true } : {}) } : {}),
    ...(hp.cache_text_encoder_outputs
      ? { cache_text_encoder_outputs: true, ...(paths.datasetWritable ? { cache_text_encoder_outputs_to_disk: true } : {}) }
      : {}),
    ...(isFlux ? profile.fixed : {}),
    ...regularisers.training,
  };
  if (!isFlux) Object.assign(model, profile.fixed);
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

  const saving: Section = {
    output_dir: paths.outputDir,
    output_name: contract.name,
    save_model_as: "safetensors",
    save_precision: savePrecision,
    save_every_n_steps: r.saveEvery,
    // Optimizer/scheduler state beside every save, so `--resume <dir>` can continue (§2.10).
    save_state: true,
  };

  const samples = kohyaSamples(contract, r.resolution, configDir, isFlux);
  const args = {
    model_arguments: model,
    network_arguments: network,
    optimizer_arguments: opt,
    training_arguments: training,
    saving_arguments: saving,
    dataset_arguments: { dataset_config: datasetPath } as Section,
    ...(samples ? { sample_arguments: samples.options as Section } : {}),
  };
  checkArgsAgainstScript(profile.script, args);
  checkNothingIgnored(dataset.datasets[0] as Record<string, unknown>, "dataset.toml [[datasets]]");

  const launcher = paths.venvDir ? joinPath(paths.venvDir, "bin", "accelerate") : "accelerate";
  // accelerate's --num_processes is the total over every machine; several hosts meet at node 0.
  const { gpus, nodes, node_rank, rendezvous } = contract.hardware;
  const processes = gpus * nodes;
  const [host, port] = (rendezvous ?? "").split(":");
  const command = [
    launcher,
    "launch",
    "--num_cpu_threads_per_process",
    "1",
    "--mixed_precision",
    mixed,
    ...(processes > 1 ? ["--multi_gpu", "--num_processes", String(processes)] : ["--num_processes", "1"]),
    "--num_machines",
    String(nodes),
    ...(nodes > 1 ? ["--machine_rank", String(node_rank), "--main_process_ip", host!, "--main_process_port", port!] : []),
    "--dynamo_backend",
    "no",
    joinPath(trainerDir, profile.script),
    "--config_file",
    argsPath,
  ];

  const header = (what: string) =>
    `# ${what} for kohya-ss/sd-scripts ${KOHYA_PIN.version} (${KOHYA_PIN.commit.slice(0, 7)}), ${profile.script}\n# Written by loraspec from ${contract.name}; edit the contract, not this file.\n`;
  const datasetToml = header("Dataset config") + stringifyToml(dataset) + "\n";
  const argsToml = header("Training args") + stringifyToml(args) + "\n";
  return {
    trainer: "kohya",
    script: profile.script,
    datasetToml,
    argsToml,
    command,
    cwd: trainerDir,
    files: [
      { name: "dataset.toml", path: datasetPath, content: datasetToml },
      { name: "args.toml", path: argsPath, content: argsToml },
      ...(samples ? [samples.file] : []),
    ],
    warnings: versionWarnings(contract.trainer.version, KOHYA_PIN.version),
    writesIntoDataset: paths.datasetWritable
      ? [...(hp.cache_latents ? ["<image>.npz (latents)"] : []), ...(hp.cache_text_encoder_outputs ? ["<image>_te_outputs.npz"] : [])]
      : [],
    outputs: {
      lora: joinPath(paths.outputDir, `${contract.name}.safetensors`),
      // sd-scripts names step saves {name}-step{step:08d}.safetensors (§2.7).
      checkpointPattern: joinPath(paths.outputDir, `${contract.name}-step{step:08d}.safetensors`),
      statePattern: joinPath(paths.outputDir, `${contract.name}-step{step:08d}-state`),
      // The sample images sd-scripts renders, as `sample` events (trainers/sample-files.ts).
      ...(samples ? { samples: { naming: "kohya" as const, dir: joinPath(paths.outputDir, SAMPLE_FILE_NAMING.kohya.folder), prefix: contract.name, items: samples.items, totalSteps: r.steps } } : {}),
    },
  };
}

function fluxModelFiles(contract: Contract, path: string | undefined): Section {
  const transformerName = FLUX_SINGLE_FILE_NAMES.transformer[contract.base.model] ?? "flux1-dev.safetensors";
  const refusal = kohyaSingleFilesRefusal(contract.base.model, path);
  if (refusal || !path) throw new LoraspecError("E_TRAINER_UNSUPPORTED", refusal?.message ?? "base.path is required", { field: "base.path", hint: refusal?.hint });
  const isFile = path.endsWith(".safetensors") || path.endsWith(".sft");
  const dir = isFile ? path.slice(0, Math.max(path.lastIndexOf("/"), 0)) || "." : path;
  return {
    pretrained_model_name_or_path: isFile ? path : joinPath(dir, transformerName),
    clip_l: joinPath(dir, FLUX_SINGLE_FILE_NAMES.clipL),
    t5xxl: joinPath(dir, FLUX_SINGLE_FILE_NAMES.t5xxl),
    ae: joinPath(dir, FLUX_SINGLE_FILE_NAMES.ae),
  };
}

function blockSwapFor(vramGb: number | undefined): number | undefined {
  if (vramGb === undefined) return undefined;
  return FLUX_BLOCK_SWAP_BY_VRAM.rows.find((row) => vramGb <= row.maxVramGb)?.blocksToSwap;
}

/** Every key must be an option of the pinned script, with the right TOML type (L-11). */
function checkArgsAgainstScript(script: KohyaScript, sections: Record<string, Section>): void {
  const flags = KOHYA_SCRIPT_FLAGS.scripts[script];
  for (const section of Object.values(sections)) {
    for (const [key, value] of Object.entries(section)) {
      const spec = flags[key];
      const problem = !spec
        ? "is not an option of this script"
        : spec.kind === "flag" && typeof value !== "boolean"
          ? "is a switch and needs true/false"
          : spec.nargs && !Array.isArray(value)
            ? "takes a list"
            : spec.choices && !spec.choices.some((c) => String(c) === String(value))
              ? `must be one of ${spec.choices.join(", ")}`
              : undefined;
      if (problem) {
        throw new LoraspecError("E_INTERNAL", `Compiled kohya option "${key}" ${problem} (${script} at ${KOHYA_PIN.version}).`, {
          details: { key, value, script },
        });
      }
    }
  }
}

/** No option sd-scripts would ignore because of another one we also wrote (it only logs a warning). */
function checkNothingIgnored(section: Record<string, unknown>, where: string): void {
  for (const rule of KOHYA_IGNORED_TOGETHER.rules) {
    if (section[rule.when] !== true) continue;
    const ignored = rule.ignores.filter((key) => key in section);
    if (ignored.length > 0) {
      throw new LoraspecError("E_INTERNAL", `Compiled ${where} sets ${rule.when} with ${ignored.join(", ")}, which sd-scripts ${KOHYA_PIN.version} ignores (${KOHYA_IGNORED_TOGETHER.source}).`, {
        details: { when: rule.when, ignored },
      });
    }
  }
}
