import { TRAIN_SPEED_SOURCE } from "../knowledge/train-speed.js";
import { lookupTrainSpeed } from "../plan/train-speed.js";
import { loraComputeMeasured } from "../plan/lora-compute.js";
import { getBaseModel, type BaseModelId, type BaseModelRecord } from "../knowledge/base-models.js";
import type { WordLookup } from "../lint/clip-pretokenize.js";
import { findGpu } from "../knowledge/gpus.js";
import { getDatasetSize, getLrRange, getSteps, CAPTION_RULES, STACKING } from "../knowledge/recipes.js";
import { COMPATIBILITY, getCompatibility, PINNED_TRAINER_VERSIONS, trainerRuns, type CompatibilityRecord } from "../knowledge/trainers.js";
import { VRAM_MODEL } from "../knowledge/vram.js";
import { LOSS_SPIKE_RULE } from "../knowledge/loss-spike.js";
import { holdSideToCheck, holdToCheck } from "./hold-to-check.js";
import { LoraspecError } from "../errors.js";
import type { ContractInput, Target, TrainerId } from "./schema.js";
import { initTargets } from "../compile/network-targets.js";
import type { DatasetSummary } from "./dataset-summary.js";
import { parseResolutionFlag } from "./training-resolution.js";

export interface InitChoices {
  base: BaseModelId;
  target: Target;
  trigger: string;
  trainer?: TrainerId;
  /** Dataset folder, relative to the contract. */
  dataset?: string;
  /** The base's weights: a Hugging Face id or a local folder/file (default: the model's official repo). */
  basePath?: string;
  /** Images found in the folder, if it exists (sizes the step count). */
  imageCount?: number;
  /** Training resolution (`--resolution`, dataset.resolution); default the base's native one. */
  resolution?: number;
  hardware?: "local" | "fal";
  gpu?: string;
  vramGb?: number;
  pricePerHour?: number;
  maxCostUsd?: number;
  name?: string;
}

/** Why a value was chosen, keyed by dotted field path; written as comments into lora.yaml. */
export interface Reason {
  why: string;
  source: string;
}

export interface Recommendation {
  contract: ContractInput;
  reasons: Record<string, Reason>;
}

/** What init knows besides the choices, so the contract is held to check's rules as check will run them. */
export interface RecommendOptions {
  /** English word list (engine: loadEnglishWords), so the trigger is held to check's word rule too. */
  words?: WordLookup;
  /**
   * The folder as check's scan sees it at the resolution init writes (engine: scanDataset), so the image count is held
   * to check's dataset-below-minimum, usable images only (a folder of images far below the resolution holds none).
   */
  dataset?: DatasetSummary;
}

/**
 * Chooses every contract value from the knowledge base for a base model and target, with the
 * reason and source for each. Pure.
 */
export function recommendContract(choices: InitChoices, options: RecommendOptions = {}): Recommendation {
  const model = getBaseModel(choices.base);
  if (!model) throw new LoraspecError("E_UNKNOWN_BASE_MODEL", `unknown base model '${choices.base}'`, { field: "base" });
  const hardware = initHardware(choices);
  const trainer = initTrainer(choices);
  const resolution = checkInitChoices(choices, options, model, trainer, hardware);
  const compat = trainerCompatibility(choices, model, trainer);
  if (resolution !== undefined) holdSideToCheck(trainer, model, resolution);
  const pinned = trainer === "kohya" || trainer === "ai-toolkit" ? PINNED_TRAINER_VERSIONS[trainer] : undefined;
  const version = pinned && compat.minVersion && (compareLoose(pinned.version, compat.minVersion) ?? 0) < 0 ? compat.minVersion : pinned?.version;
  const init: InitDecisions = {
    model,
    trainer,
    hardware,
    resolution,
    compat,
    version,
    pinned,
    sizing: initSizing(choices, model),
    targets: initTargets(trainer, choices.base),
    optimizer: initOptimizer(trainer, model),
  };
  const contract = initContract(choices, init);
  const reasons = initReasons(choices, init);
  holdToCheck(contract, reasons, choices, model, options);
  return { contract, reasons };
}

/** What recommendContract decided before writing the contract and its reasons. */
interface InitDecisions {
  model: BaseModelRecord;
  trainer: TrainerId;
  hardware: "local" | "fal";
  /** `--resolution`, parsed; undefined: the base's native one. */
  resolution: number | undefined;
  compat: CompatibilityRecord;
  /** trainer.version: the pinned one, or the compatibility record's minimum when the pin is older. */
  version: string | undefined;
  pinned: { version: string; source: string } | undefined;
  sizing: InitSizing;
  targets: ReturnType<typeof initTargets>;
  optimizer: ReturnType<typeof initOptimizer>;
}

/**
 * The choices that cannot make a contract, refused before anything else: a hosted trainer on local hardware (or the
 * reverse), a folder with too few images (without the scan; with it check's own rule says it), `--resolution` with fal.
 * Returns `--resolution`, parsed.
 */
function checkInitChoices(choices: InitChoices, options: RecommendOptions, model: BaseModelRecord, trainer: TrainerId, hardware: "local" | "fal"): number | undefined {
  if ((trainer === "fal") !== (hardware === "fal")) {
    throw new LoraspecError("E_USAGE", trainer === "fal" ? "--trainer fal is a hosted trainer: it cannot run on --hardware local" : `--hardware fal runs fal's hosted trainers, not ${trainer}`, {
      field: "hardware",
      hint: trainer === "fal" ? "Use --hardware fal (or leave --hardware out)." : "Use --trainer fal, or --hardware local.",
    });
  }
  const size0 = getDatasetSize(choices.target, model.family);
  // With the scan, check's own rule says it (holdToCheck), counting usable images only.
  if (!options.dataset && choices.imageCount !== undefined && choices.imageCount > 0 && choices.imageCount < size0.images.min) {
    throw new LoraspecError("E_USAGE", `the dataset folder holds ${choices.imageCount} images; a ${choices.target} LoRA needs at least ${size0.images.min}`, {
      field: "dataset",
      hint: `Add images (${size0.advice}), then run init again.`,
      details: { source: size0.source },
    });
  }
  const resolution = parseResolutionFlag(choices.resolution);
  if (resolution !== undefined && trainer === "fal") {
    throw new LoraspecError("E_USAGE", "--resolution: fal's hosted trainers take no training resolution (they size the images themselves)", {
      field: "dataset.resolution",
      hint: "Leave --resolution out with --trainer fal.",
    });
  }
  return resolution;
}

/** The trainer's compatibility record for the base; a trainer that does not run it is refused, naming those that do. */
function trainerCompatibility(choices: InitChoices, model: BaseModelRecord, trainer: TrainerId): CompatibilityRecord {
  const compat = getCompatibility(trainer, choices.base);
  if (!compat || !trainerRuns(trainer, choices.base)) {
    const supported = COMPATIBILITY.filter((r) => r.base === choices.base && trainerRuns(r.trainer, r.base) && ["diffusers", "kohya", "ai-toolkit", "fal"].includes(r.trainer)).map((r) => r.trainer);
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `${trainer} does not train ${model.label}`, {
      field: "trainer",
      hint: supported.length ? `Pick one of: ${supported.join(", ")}.` : `No trainer loraspec drives trains ${model.label} today; pick another base model.`,
      details: { source: compat?.source },
    });
  }
  return compat;
}

/** The recipes behind the dataset size, learning rate and step count, and the numbers init takes from them. */
interface InitSizing {
  lr: ReturnType<typeof getLrRange>;
  size: ReturnType<typeof getDatasetSize>;
  steps: ReturnType<typeof getSteps>;
  /** The images found in the folder, else the recommended count. */
  images: number;
  stepCount: number;
  saveEvery: number;
}

function initSizing(choices: InitChoices, model: BaseModelRecord): InitSizing {
  const lr = getLrRange(model.family, choices.target);
  const size = getDatasetSize(choices.target, model.family);
  const steps = getSteps(choices.target);
  const images = choices.imageCount && choices.imageCount > 0 ? choices.imageCount : size.recommended;
  const stepCount = clamp(Math.round((steps.passesPerImage * images) / 50) * 50, steps.steps.min, steps.steps.max);
  const saveEvery = Math.max(50, Math.round(stepCount / 8 / 50) * 50);
  return { lr, size, steps, images, stepCount, saveEvery };
}

/** The contract init writes, before holdToCheck fits it to the VRAM, the budget and check's rules. */
function initContract(choices: InitChoices, init: InitDecisions): ContractInput {
  const { model, trainer, hardware, resolution, compat, version, sizing, targets } = init;
  const gpu = findGpu(choices.gpu);
  const vramGb = choices.vramGb ?? gpu?.vramGb;
  return {
    version: 1,
    name: choices.name ?? `${choices.trigger}-${choices.target}`,
    // No base.quantize here: a written one is a pin; holdToCheck writes the one the VRAM fit needs, with its reason.
    base: { model: choices.base, path: choices.basePath ?? model.hfRepo },
    trainer: { name: trainer, ...(version ? { version } : {}), ...(compat.endpoint ? { endpoint: compat.endpoint } : {}) },
    hardware:
      hardware === "fal"
        ? { kind: "fal" }
        : {
            kind: "local",
            ...(choices.gpu ? { gpu: choices.gpu } : {}),
            ...(vramGb ? { vram_gb: vramGb } : {}),
            gpus: 1,
            ...(choices.pricePerHour !== undefined ? { price_per_hour: choices.pricePerHour } : {}),
          },
    target: choices.target,
    dataset: { path: choices.dataset ?? "./dataset", expected_images: sizing.images, resolution: resolution ?? model.nativeResolution, aspect: "square", crop: "center" },
    captions: { style: "natural", source: "manual", extension: ".txt" },
    trigger: { word: choices.trigger, placement: "start" },
    hyperparameters: {
      learning_rate: sizing.lr?.recommended ?? 1e-4,
      steps: sizing.stepCount,
      batch_size: 1,
      gradient_accumulation: 1,
      rank: 16,
      alpha: 16,
      optimizer: init.optimizer.optimizer,
      precision: "bf16",
      // The built-in trainer's plan chooses it from the VRAM ceiling (plan/train-settings.ts).
      ...(trainer === "diffusers" ? {} : { gradient_checkpointing: true }),
      cache_latents: true,
      cache_text_encoder_outputs: true,
      save_every: sizing.saveEvery,
      seed: 42,
      lr_scheduler: "constant",
      warmup_steps: 0,
      // Regularisers at the trainers' defaults (knowledge/regularisers.ts), written out so they can be found.
      caption_dropout: 0,
      shuffle_tags: false,
      noise_offset: 0,
    },
    ...(targets.targets ? { network: { targets: targets.targets } } : {}),
    limits: { ...(vramGb && hardware === "local" ? { vram_ceiling_gb: vramGb } : {}), ...(choices.maxCostUsd !== undefined ? { max_cost_usd: choices.maxCostUsd } : {}) },
    failure: { on_divergence: "stop", loss_spike_factor: LOSS_SPIKE_RULE.factor, on_oom: "fallback", oom_fallbacks: ["gradient_checkpointing", "optimizer_8bit", "smaller_batch"] },
    validation: {
      seeds: [1, 2, 3],
      trigger_prompts: [subjectPrompt(choices.target)],
      pose_variations: choices.target === "style" ? 0 : 10,
      novel_scenes: [choices.target === "style" ? "a lighthouse on a cliff at dawn, in the style of {trigger}" : "{trigger} on the surface of the moon"],
      stack: [],
      self_weight: 1,
      weight_sweep: [0.6, 0.8, 1.0],
      sampler: hardware === "fal" ? "fal" : "worker",
    },
  };
}

/** Why each value of initContract's contract was chosen, in the order lora.yaml's comments follow. */
function initReasons(choices: InitChoices, init: InitDecisions): Record<string, Reason> {
  const { model, trainer, hardware, resolution, compat, version, pinned, targets, optimizer } = init;
  const { lr, size, steps, images } = init.sizing;
  const reasons: Record<string, Reason> = {};
  reasons["trainer.name"] = choices.trainer
    ? { why: `your choice; supports ${model.label}`, source: compat.source }
    : { why: `supports ${model.label}${hardware === "fal" ? " as a hosted fal.ai trainer" : " locally"}`, source: compat.source };
  if (version) reasons["trainer.version"] = { why: "the version loraspec's compiler targets (pinned: flags change between versions)", source: pinned!.source };
  reasons["base.model"] = { why: `${model.label}: ${model.architecture}; text encoders ${model.textEncoders.map((t) => t.name).join(" + ")}; native ${model.nativeResolution} px`, source: model.source };
  reasons["dataset.resolution"] =
    resolution === undefined
      ? { why: `${model.label}'s native resolution`, source: model.source }
      : { why: `your choice (--resolution)${resolution < model.nativeResolution ? `, below ${model.label}'s native ${model.nativeResolution} px: the LoRA learns at this size` : ""}`, source: model.source };
  reasons["dataset.expected_images"] = {
    why: `${choices.imageCount ? `${images} images found in the folder` : `recommended count`}; a ${choices.target} LoRA wants ${size.images.min}-${size.images.max} (${size.advice})`,
    source: size.source,
  };
  if (lr) reasons["hyperparameters.learning_rate"] = { why: `range ${sci(lr.range.min)} to ${sci(lr.range.max)} for a ${choices.target} LoRA on ${model.label}`, source: lr.source };
  reasons["hyperparameters.steps"] = {
    why: `~${steps.passesPerImage} passes x ${images} images, kept within ${steps.steps.min}-${steps.steps.max} for a ${choices.target}`,
    source: steps.source,
  };
  reasons["hyperparameters.save_every"] = { why: "about 8 checkpoints, so an overcooked run still has an earlier LoRA", source: "ours" };
  reasons["hyperparameters.optimizer"] = { why: optimizer.why, source: optimizer.source };
  if (trainer !== "diffusers") {
    reasons["hyperparameters.gradient_checkpointing"] = { why: "trades 30-100% speed for the activation memory that dominates LoRA VRAM", source: VRAM_MODEL.source };
  }
  reasons["captions.style"] = {
    why: model.captionEncoder === "clip" ? "natural language works everywhere; tags are acceptable on SDXL" : `${model.label} reads captions with a ${model.captionEncoder === "t5" ? "T5" : "LLM"} encoder: write sentences, not tags`,
    source: CAPTION_RULES.naturalForT5.source,
  };
  if (targets.targets) reasons["network.targets"] = { why: targets.why, source: targets.source };
  // No network.targets to write (fal, or a base without a module table): said on the trainer, where the choice lives.
  else reasons["trainer.name"] = { why: `${reasons["trainer.name"]!.why}; ${targets.why}`, source: `${reasons["trainer.name"]!.source}; ${targets.source}` };
  reasons["trigger.placement"] = { why: "the trigger opens every caption", source: CAPTION_RULES.triggerAtStart.source };
  reasons["validation.self_weight"] = { why: `when stacking, keep at most ${STACKING.maxAdapters} LoRAs with combined weight <= ${STACKING.maxCombinedWeight}`, source: STACKING.source };
  return reasons;
}

function initHardware(choices: InitChoices): "local" | "fal" {
  return choices.hardware ?? (choices.trainer === "fal" ? "fal" : "local");
}

/** The trainer init writes for these choices (--trainer, else the first that runs the base on the hardware). */
export function initTrainer(choices: InitChoices): TrainerId {
  return choices.trainer ?? pickTrainer(choices.base, initHardware(choices));
}

function pickTrainer(base: BaseModelId, hardware: "local" | "fal"): TrainerId {
  if (hardware === "fal") return "fal";
  for (const t of ["ai-toolkit", "kohya", "diffusers"] as const) if (trainerRuns(t, base)) return t;
  return "diffusers";
}

function subjectPrompt(target: Target): string {
  if (target === "style") return "a city street at night, in the style of {trigger}";
  if (target === "product") return "a photo of {trigger} on a marble table, studio lighting";
  return "a photo of {trigger} standing in a park";
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

function sci(x: number): string {
  return x.toExponential().replace(/\.?0+e/, "e");
}

function compareLoose(a: string, b: string): number | undefined {
  const pa = a.replace(/^v/, "").split(".").map(Number);
  const pb = b.replace(/^v/, "").split(".").map(Number);
  if ([...pa, ...pb].some(Number.isNaN)) return undefined;
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/**
 * The optimizer init writes. The built-in trainer: adamw, whose fused step and (SDXL) whole-step CUDA graph the plan
 * turns on only for adamw (plan/train-settings.ts), while 8-bit states would save a LoRA's few bytes per parameter
 * (the OOM fallback optimizer_8bit still switches when memory runs out). Other trainers: 8-bit AdamW, their own
 * recommended default.
 */
function initOptimizer(trainer: string, model: BaseModelRecord): { optimizer: "adamw" | "adamw8bit"; why: string; source: string } {
  const per = VRAM_MODEL.loraBytesPerParam;
  if (trainer !== "diffusers") return { optimizer: "adamw8bit", why: `8-bit AdamW states: ~${per.adamw8bit} B per LoRA parameter instead of ${per.adamw}`, source: VRAM_MODEL.source };
  const savedGb = (16 * model.loraParamsPerRank * (per.adamw - per.adamw8bit)) / 1e9;
  // as the plan will time it: the LoRA path in bf16 where measured (plan/lora-compute.ts; a bf16 base, plain LoRA: init's own)
  const loraCompute = loraComputeMeasured(model) ? ("bf16" as const) : ("fp32" as const);
  const at = (cudaGraphs: boolean) => lookupTrainSpeed(model.id, { gradientCheckpointing: false, compile: false, cudaGraphs, quantize: "none", loraCompute }, 1)?.secondsPerStep;
  const [withGraph, without] = [at(true), at(false)];
  const graph = model.family === "sdxl" && withGraph && without ? ` and SDXL's whole-step CUDA graph (${withGraph} vs ${without} s/step on an H200)` : "";
  return {
    optimizer: "adamw",
    why: `the built-in trainer's fused AdamW${graph} need adamw; 8-bit states would save only ~${savedGb.toFixed(2)} GB at rank 16 (the OOM fallback optimizer_8bit switches if memory runs out)`,
    source: `${VRAM_MODEL.source}; ${TRAIN_SPEED_SOURCE}`,
  };
}
