import { describeTargets } from "../compile/network-targets.js";
import type { Contract } from "../contract/schema.js";
import type { DatasetSummary } from "../contract/dataset-summary.js";
import { getBaseModel, type BaseModelRecord } from "../knowledge/base-models.js";
import { findGpu, GPUS } from "../knowledge/gpus.js";
import { getFalPrice } from "../knowledge/prices.js";
import { getDatasetSize, getLrRange, getSteps } from "../knowledge/recipes.js";
import { getCompatibility } from "../knowledge/trainers.js";
import { isLoraspecError, LoraspecError } from "../errors.js";
import { resolveTrainSettings, type TrainSettings } from "./train-settings.js";
import { resolveBuiltinSettings, type BuiltinSettings } from "../compile/diffusers.js";
import { estimateVramWith, type VramEstimate } from "./vram-model.js";
import { walltimeOn, type WalltimeEstimate } from "./walltime.js";
import { networkCost, type NetworkCost } from "./network-cost.js";
import { trainingShapes, type TrainingShapes } from "./trainer-buckets.js";
import { checkpointsOf } from "./checkpoints.js";
import { effectiveBatchOf } from "./effective-batch.js";
import { epochSplit, regMix, regShareText, stepsForPasses } from "./epoch.js";
import { trainerReceives, type TrainerReceives } from "../compile/trainer-receives.js";

/** A price fetched from fal's pricing API (engine: fetchFalPrices). */
export interface LivePrice {
  endpoint: string;
  /** USD per training step, when the unit could be read as steps. */
  usdPerStep?: number;
  unitPrice: number;
  unit: string;
  currency: string;
  fetchedAt: string;
}

export interface PlanOptions {
  livePrices?: readonly LivePrice[];
  /**
   * The regularisation images the trainer reads (check's scan of dataset.reg_path); without it a contract with reg_path is
   * planned with as many as the dataset's. Callers outside core build this with plan/plan-inputs.ts (planFrom), not by hand.
   */
  regImages?: number;
}

export type { WalltimeEstimate } from "./walltime.js";

export interface CostEstimate {
  usd?: number;
  /** Which figure was used and how: "live fal price ...", "fal price record ...", "local ...". */
  basis: string;
  source?: string;
}

export interface Plan {
  name: string;
  base: { id: string; label: string; path: string };
  trainer: { name: string; version?: string; endpoint?: string };
  target: string;
  images: { count: number; source: "scan" | "contract" | "recommended" };
  resolution: number;
  steps: number;
  stepsSource: string;
  /**
   * Times each training image trains over the run (every resolution copy counted), less the regularisation images'
   * share of the batches: steps x effective batch x trainShare / images (plan/epoch.ts passesOf). Lint's passes rules read this.
   */
  passesPerImage: number;
  /** The training images' share of each step's batch (plan/epoch.ts regMix): 1 without reg images, 0.5 where Kohya pads or ai-toolkit alternates them. */
  trainShare: number;
  repeats: number;
  epochs: number;
  stepsPerEpoch: number;
  /** Copies of the dataset one epoch trains: the training resolutions where the trainer trains each image at each (plan/epoch.ts), else 1. */
  epochResolutions: number;
  /**
   * The regularisation images (dataset.reg_path) the epoch counts, where the trainer takes them (plan/epoch.ts): their count
   * (scan, or assumed as many as the dataset's), how the trainer mixes them in, and the reg entries (Kohya, built-in) or reg steps (ai-toolkit) of one epoch.
   */
  reg?: { count: number; counted: "scan" | "assumed"; rule: "pad" | "alternate" | "pool"; perEpoch: number; source: string };
  batchSize: number;
  gradientAccumulation: number;
  gpus: number;
  effectiveBatch: number;
  learningRate: number;
  learningRateSource: string;
  rank: number;
  alpha: number;
  saveEvery?: number;
  checkpoints: number;
  vram: VramEstimate;
  /** Gradient checkpointing, compile, CUDA graph and base precision as resolved, each with why. */
  trainSettings: TrainSettings;
  /** Which modules the LoRA trains (network.targets / network.modules, else the trainer's default), with why. */
  networkTargets: ReturnType<typeof describeTargets>;
  /** network.type's cost over LoRA (step time, adapter params), measured on the H200 (knowledge/network-type-cost.ts), with how it was scaled and why. */
  networkCost: NetworkCost;
  /** The shapes the trainer trains the images in (plan/trainer-buckets.ts); absent where the bucket set cannot exist (check says why) or fal sizes them. */
  buckets?: TrainingShapes;
  /** trainer diffusers: every setting of the worker's request, exactly as the compiler writes it (absent where it refuses the contract). */
  workerSettings?: BuiltinSettings;
  /** One row per known GPU class; `selected` is the contract's GPU when known. */
  walltime: WalltimeEstimate[];
  selected?: WalltimeEstimate;
  cost: CostEstimate;
  /**
   * Which of these settings the trainer is handed (compile/trainer-receives.ts): plan, train and the page print
   * only those (fal's hosted endpoints pick their own GPU, rank, batch and resolution).
   */
  receives: TrainerReceives;
  notes: string[];
}

/** The run's training shapes; undefined where the trainer takes no resolution (fal sizes the images itself) or a bucket set that cannot exist (lint buckets-invalid). */
function shapesOrNone(contract: Contract, model: BaseModelRecord, resolution: number, dataset: DatasetSummary | undefined): TrainingShapes | undefined {
  if (!trainerReceives(contract).settings.resolution) return undefined;
  try {
    return trainingShapes(contract, model, resolution, dataset?.images);
  } catch (error) {
    if (isLoraspecError(error)) return undefined;
    throw error;
  }
}

/** Resolves a contract (plus what the dataset scan found) into concrete numbers. Pure. */
export function planRun(contract: Contract, dataset?: DatasetSummary, options: PlanOptions = {}): Plan {
  const model = getBaseModel(contract.base.model);
  if (!model) throw new LoraspecError("E_UNKNOWN_BASE_MODEL", `unknown base model '${contract.base.model}'`, { field: "base.model" });
  const hp = contract.hyperparameters;
  const notes: string[] = [];

  const sizes = getDatasetSize(contract.target, model.family);
  const images =
    dataset && dataset.images.length > 0
      ? { count: dataset.images.length, source: "scan" as const }
      : contract.dataset.expected_images
        ? { count: contract.dataset.expected_images, source: "contract" as const }
        : { count: sizes.recommended, source: "recommended" as const };
  if (images.source === "recommended") notes.push(`image count unknown: planned with ${images.count} (${sizes.source})`);

  const resolution = contract.dataset.resolution ?? model.nativeResolution;
  // batch x accumulation x every GPU of every host: one home (plan/effective-batch.ts), shared with lint.
  const batch = effectiveBatchOf(contract);
  const { gpus, images: effectiveBatch } = batch;

  // Regularisation images: check's scan of dataset.reg_path, else as many as the dataset's (Kohya and ai-toolkit count the same for any number).
  // Where the trainer mixes them into the batches, the training images get only their share (plan/epoch.ts regMix, one home):
  // the steps for N passes per image are counted with it, and so is every passes figure plan and lint say.
  const regImages = contract.dataset.reg_path ? (options.regImages ?? images.count) : 0;
  const mix = regMix(contract, { images: images.count, regImages });
  const per = { images: images.count, batchImages: effectiveBatch, trainShare: mix.trainShare };
  const stepsRecord = getSteps(contract.target);
  let steps: number;
  let stepsSource: string;
  const regText = mix.trainShare < 1 ? ` / ${regShareText(mix.trainShare)}` : "";
  if (hp.steps) {
    steps = hp.steps;
    stepsSource = "contract: hyperparameters.steps";
  } else if (hp.passes_per_image) {
    steps = stepsForPasses(hp.passes_per_image, per);
    stepsSource = `contract: ${hp.passes_per_image} passes x ${images.count} images / batch ${effectiveBatch}${regText}`;
  } else {
    // The recipe's steps range is the guide's at batch 1 on the dataset alone: it bounds the images trained (passes x images),
    // then the steps are the ones that train those passes at this batch with this share (lint judges the same figure).
    const imageSteps = Math.min(stepsRecord.steps.max, Math.max(stepsRecord.steps.min, stepsRecord.passesPerImage * images.count));
    steps = stepsForPasses(imageSteps / images.count, per);
    stepsSource = `knowledge: ~${stepsRecord.passesPerImage} passes per image, within ${stepsRecord.steps.min}-${stepsRecord.steps.max} steps at batch 1, / batch ${effectiveBatch}${regText} (${stepsRecord.source})`;
  }
  // Counted as the compiled config runs an epoch: once per training resolution where the trainer makes one dataset per resolution.
  const split = epochSplit(contract, { images: images.count, steps, resolution, batch, regImages });
  const { repeats, stepsPerEpoch, epochs, resolutions: epochResolutions, imagePasses: passesPerImage, trainShare } = split;
  const reg = split.reg ? { count: split.reg.images, counted: options.regImages !== undefined ? ("scan" as const) : ("assumed" as const), rule: split.reg.rule, perEpoch: split.reg.perEpoch, source: split.reg.source } : undefined;
  if (reg?.counted === "assumed" && reg.rule === "pool") notes.push(`regularisation images not counted: planned with ${reg.count}, as many as the dataset's (the built-in trainer draws from both folders pooled)`);

  const lrRecord = getLrRange(model.family, contract.target);
  const learningRate = hp.learning_rate ?? lrRecord?.recommended ?? 1e-4;
  const learningRateSource = hp.learning_rate ? "contract: hyperparameters.learning_rate" : `knowledge: ${lrRecord?.source ?? "default"}`;

  const trainSettings = resolveTrainSettings(contract, { steps, resolution });
  const buckets = shapesOrNone(contract, model, resolution, dataset);
  // ai-toolkit picks its shapes per image (plan/trainer-buckets.ts): the VRAM peak at its largest, the step at their mean.
  const own = buckets?.picker === "ai-toolkit" ? buckets : undefined;
  const vram = estimateVramWith(contract, model, own ? Math.sqrt(own.maxArea) : resolution, trainSettings);
  const walltime = GPUS.map((gpu) => walltimeOn(gpu, model, contract, resolution, steps, trainSettings, { images: images.count, ...(own ? { meanArea: own.meanArea } : {}) }));
  const contractGpu = findGpu(contract.hardware.gpu);
  const selected = contractGpu ? walltime.find((w) => w.gpu === contractGpu.id) : undefined;
  if (contract.hardware.kind === "local" && contract.hardware.gpu && !contractGpu) {
    notes.push(`GPU '${contract.hardware.gpu}' is not in the speed table; see the per-GPU rows`);
  }

  const compat = getCompatibility(contract.trainer.name, model.id);
  const endpoint = contract.trainer.name === "fal" ? (contract.trainer.endpoint ?? compat?.endpoint) : undefined;
  const cost = estimateCost(contract, steps, endpoint, selected, options.livePrices ?? []);
  if (contract.trainer.name === "fal") {
    notes.push("fal publishes no per-step timing; a third party reports ~15-30 min per job (perf-reliability.md §1.1)");
  }

  return {
    name: contract.name,
    base: { id: model.id, label: model.label, path: contract.base.path ?? model.hfRepo },
    trainer: { name: contract.trainer.name, version: contract.trainer.version, endpoint },
    target: contract.target,
    images,
    resolution,
    steps,
    stepsSource,
    passesPerImage,
    trainShare,
    repeats,
    epochs,
    stepsPerEpoch,
    epochResolutions,
    ...(reg ? { reg } : {}),
    // as effectiveBatchOf counts them (1 where the trainer picks its own batch: fal)
    batchSize: batch.batch,
    gradientAccumulation: batch.accumulation,
    gpus,
    effectiveBatch,
    learningRate,
    learningRateSource,
    rank: hp.rank,
    alpha: hp.alpha ?? hp.rank,
    saveEvery: hp.save_every,
    checkpoints: checkpointsOf(contract, steps),
    vram,
    trainSettings,
    networkTargets: describeTargets(contract),
    networkCost: networkCost(contract, model),
    ...(buckets ? { buckets } : {}),
    workerSettings: contract.trainer.name === "diffusers" ? builtinSettingsOrNone(contract, { steps, learningRate, resolution }) : undefined,
    walltime,
    selected,
    cost,
    receives: trainerReceives(contract),
    notes,
  };
}

function estimateCost(
  contract: Contract,
  steps: number,
  endpoint: string | undefined,
  selected: WalltimeEstimate | undefined,
  livePrices: readonly LivePrice[],
): CostEstimate {
  if (contract.trainer.name === "fal" || contract.hardware.kind === "fal") {
    if (!endpoint) return { basis: "no fal trainer endpoint for this base model" };
    const live = livePrices.find((p) => p.endpoint === endpoint);
    if (live?.usdPerStep !== undefined) {
      return {
        usd: round2(live.usdPerStep * steps),
        basis: `live fal price ${live.unitPrice} ${live.currency} per ${live.unit} (fetched ${live.fetchedAt}) x ${steps} steps`,
        source: "fal pricing API",
      };
    }
    const record = getFalPrice(endpoint);
    if (!record) return { basis: `no price record for ${endpoint}; set FAL_KEY to fetch the live price` };
    const billed = Math.max(steps, record.minSteps ?? 0);
    const usd = (record.usdFlat ?? 0) + (record.usdPerStep ?? 0) * billed;
    return {
      usd: round2(usd),
      basis: `fal price record (${record.published}, as of ${record.asOf})${record.usdPerStep ? ` x ${billed} steps` : ""}${live ? "; live price unit not in steps" : ""}`,
      source: record.source,
    };
  }
  const price = contract.hardware.price_per_hour;
  if (price === undefined) return { basis: "local GPU: set hardware.price_per_hour for a cost" };
  if (!selected) return { basis: "local GPU not in the speed table: no walltime to price" };
  const gpus = contract.hardware.gpus * contract.hardware.nodes;
  return {
    usd: round2(selected.hours * price * gpus),
    basis: `local: ${selected.hours} h x ${gpus} GPU x $${price}/h (${selected.label}, ${selected.basis})`,
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function builtinSettingsOrNone(contract: Contract, plan: { steps: number; learningRate: number; resolution: number }): BuiltinSettings | undefined {
  try {
    return resolveBuiltinSettings(contract, plan).settings;
  } catch (error) {
    if (isLoraspecError(error)) return undefined; // check reports why (trainer-unsupported-base and the like)
    throw error;
  }
}
