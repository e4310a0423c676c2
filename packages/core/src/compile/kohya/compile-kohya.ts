import { stringify as stringifyToml } from "smol-toml";
import { resolveBuckets } from "../../plan/buckets.js";
import type { Contract } from "../../contract/schema.js";
import { LoraspecError } from "../../errors.js";
import { assertSettingsAccepted } from "../trainer-capabilities.js";
import { KOHYA_PIN, KOHYA_SCRIPT_FLAGS, type KohyaScript } from "../../trainers/pins.js";
import { assertTrainerSupports } from "../../trainers/support.js";
import { kohyaRegularisers } from "../regularisers.js";
import {
  joinPath,
  resolveTraining,
  versionWarnings,
  type CompiledFile,
  type CompilePaths,
  type CompilePlan,
  type ResolvedTraining,
} from "../../trainers/compile-input.js";
import { SAMPLE_FILE_NAMING, type SampleWatch } from "../../trainers/sample-files.js";
import { kohyaSamples } from "./kohya-samples.js";
import { KOHYA_IGNORED_TOGETHER, KOHYA_PROFILES } from "./kohya-profiles.js";
import {
  kohyaMixedPrecision,
  kohyaModelArguments,
  kohyaNetworkArguments,
  kohyaOptimizerArguments,
  kohyaSavingArguments,
  kohyaTrainingArguments,
  type Section,
} from "./kohya-args.js";

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

type KohyaSamples = ReturnType<typeof kohyaSamples>;

/**
 * Compiles a contract (+ plan) into kohya sd-scripts' dataset TOML, args TOML and launch command
 * for the pinned version (trainers.md §2). Pure: the caller writes `files` and runs `command`.
 */
export function compileKohya(contract: Contract, plan: CompilePlan, paths: CompilePaths): KohyaCompiled {
  const profile = KOHYA_PROFILES[contract.base.model];
  assertTrainerSupports("kohya", contract.base.model, profile !== undefined);
  if (!profile) throw new LoraspecError("E_INTERNAL", `No kohya profile for ${contract.base.model}.`);
  const r = resolveTraining(contract, plan);
  const configDir = paths.configDir ?? paths.outputDir;
  const trainerDir = paths.trainerDir ?? "sd-scripts";
  const datasetPath = joinPath(configDir, "dataset.toml");
  const argsPath = joinPath(configDir, "args.toml");
  const isFlux = profile.script === "flux_train_network.py";

  const regularisers = kohyaRegularisers(contract);
  const dataset = kohyaDataset(contract, paths, r, regularisers.general);

  assertSettingsAccepted(contract);
  const model = kohyaModelArguments(contract, profile, paths, r);
  const network = kohyaNetworkArguments(contract, profile, r);
  const opt = kohyaOptimizerArguments(contract, r);
  const training = kohyaTrainingArguments(contract, plan, paths, profile, r, regularisers.training);
  const saving = kohyaSavingArguments(contract, paths, r);
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

  const command = accelerateCommand(contract, paths, joinPath(trainerDir, profile.script), argsPath);
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
    writesIntoDataset: kohyaWritesIntoDataset(contract, paths),
    outputs: kohyaOutputs(contract, paths, r, samples),
  };
}

/** The dataset TOML ([general] / [[datasets]] / [[datasets.subsets]], trainers.md §2.4). */
function kohyaDataset(contract: Contract, paths: CompilePaths, r: ResolvedTraining, regularisers: Record<string, unknown>) {
  const bucketed = contract.dataset.aspect === "buckets";
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
  return {
    general: {
      // Caption order matters (trigger first) and shuffling breaks text-encoder caching (§2.12):
      // hyperparameters.shuffle_tags keeps the trigger's tag first (lint/regulariser-rules.ts).
      shuffle_caption: regularisers.shuffle_caption,
      caption_extension: contract.captions.extension,
      ...regularisers,
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
}

/** `accelerate launch` of the script with the args TOML, over every GPU of every node. */
function accelerateCommand(contract: Contract, paths: CompilePaths, script: string, argsPath: string): string[] {
  const launcher = paths.venvDir ? joinPath(paths.venvDir, "bin", "accelerate") : "accelerate";
  // accelerate's --num_processes is the total over every machine; several hosts meet at node 0.
  const { gpus, nodes, node_rank, rendezvous } = contract.hardware;
  const processes = gpus * nodes;
  const [host, port] = (rendezvous ?? "").split(":");
  return [
    launcher,
    "launch",
    "--num_cpu_threads_per_process",
    "1",
    "--mixed_precision",
    kohyaMixedPrecision(contract),
    ...(processes > 1 ? ["--multi_gpu", "--num_processes", String(processes)] : ["--num_processes", "1"]),
    "--num_machines",
    String(nodes),
    ...(nodes > 1 ? ["--machine_rank", String(node_rank), "--main_process_ip", host!, "--main_process_port", port!] : []),
    "--dynamo_backend",
    "no",
    script,
    "--config_file",
    argsPath,
  ];
}

/** The cache files sd-scripts writes beside the images (only into a folder loraspec owns). */
function kohyaWritesIntoDataset(contract: Contract, paths: CompilePaths): string[] {
  const hp = contract.hyperparameters;
  return paths.datasetWritable
    ? [...(hp.cache_latents ? ["<image>.npz (latents)"] : []), ...(hp.cache_text_encoder_outputs ? ["<image>_te_outputs.npz"] : [])]
    : [];
}

function kohyaOutputs(contract: Contract, paths: CompilePaths, r: ResolvedTraining, samples: KohyaSamples): KohyaCompiled["outputs"] {
  return {
    lora: joinPath(paths.outputDir, `${contract.name}.safetensors`),
    // sd-scripts names step saves {name}-step{step:08d}.safetensors (§2.7).
    checkpointPattern: joinPath(paths.outputDir, `${contract.name}-step{step:08d}.safetensors`),
    statePattern: joinPath(paths.outputDir, `${contract.name}-step{step:08d}-state`),
    // The sample images sd-scripts renders, as `sample` events (trainers/sample-files.ts).
    ...(samples ? { samples: { naming: "kohya" as const, dir: joinPath(paths.outputDir, SAMPLE_FILE_NAMING.kohya.folder), prefix: contract.name, items: samples.items, totalSteps: r.steps } } : {}),
  };
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
