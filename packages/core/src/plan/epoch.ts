import type { Contract } from "../contract/schema.js";
import { TARGET_EPOCHS } from "../knowledge/recipes.js";
import { TRAINER_EPOCHS, type RegEpochRule } from "../knowledge/trainer-epochs.js";
import type { EffectiveBatch } from "./effective-batch.js";
import { trainingResolutions } from "./training-resolutions.js";

/**
 * The plan's repeats x epochs split, counted as the trainer's compiled config runs an epoch
 * (knowledge/trainer-epochs.ts): the dataset x repeats once per training resolution where the trainer
 * makes one dataset per resolution (Kohya's [[datasets]], ai-toolkit's resolution list, the built-in's
 * entries), each copy batched on its own, then split over accumulation and GPUs; with regularisation
 * images, as the trainer mixes them in (Kohya pads them to each copy's entries, ai-toolkit takes them on
 * alternate steps, the built-in trainer pools them). Pure.
 */
export interface EpochSplit {
  repeats: number;
  /** Copies of the dataset in one epoch: the training resolutions where the trainer trains each, else 1. */
  resolutions: number;
  stepsPerEpoch: number;
  epochs: number;
  /** The regularisation images in the epoch: how the trainer mixes them in and the reg entries (or reg steps, ai-toolkit) one epoch holds. Absent: none. */
  reg?: { images: number; rule: Exclude<RegEpochRule, "none">; perEpoch: number; source: string };
  /** The training images' share of the batches (regMix): 1 without reg images. */
  trainShare: number;
  /** Times each training image is trained over the whole run (every resolution copy counted), the reg images' share of the batches left out (passesOf). */
  imagePasses: number;
  source: string;
}

/**
 * How the trainer mixes the regularisation images into its batches (knowledge/trainer-epochs.ts): the rule, the reg
 * images it takes, and the training images' share of the batches (Kohya's epoch is half reg entries, ai-toolkit's
 * steps alternate, the built-in pool is N of N + R; 1 without reg images or where the trainer takes none). The one
 * home of that share: the plan's passes per image, its recommended steps and lint's passes and steps rules read it.
 */
export interface RegMix {
  rule: RegEpochRule;
  regImages: number;
  trainShare: number;
}

export function regMix(contract: Pick<Contract, "trainer">, p: { images: number; regImages?: number }): RegMix {
  const record = TRAINER_EPOCHS[contract.trainer.name];
  const rule: RegEpochRule = (p.regImages ?? 0) > 0 ? record.reg.rule : "none";
  const regImages = rule === "none" ? 0 : p.regImages!;
  const trainShare = rule === "pad" || rule === "alternate" ? 0.5 : rule === "pool" ? p.images / (p.images + regImages) : 1;
  return { rule, regImages, trainShare };
}

/** A training share as said: 0.5 is "half", else a percentage. */
function fmtShare(share: number): string {
  return share === 0.5 ? "half" : `${Math.round(share * 100)}%`;
}

/** The training images' share of the batches in words, as plan, lint and the CLI say it. */
export function regShareText(trainShare: number): string {
  return `${fmtShare(trainShare)} of the batches on the dataset (the rest on regularisation images)`;
}

/** Times each training image trains over `steps` (every resolution copy counted), the reg images' share of the batches left out. Unrounded. */
export function passesOf(steps: number, p: { images: number; batchImages: number; trainShare: number }): number {
  return (steps * p.batchImages * p.trainShare) / p.images;
}

/** The steps that train each training image `passes` times: the inverse of passesOf, rounded up. */
export function stepsForPasses(passes: number, p: { images: number; batchImages: number; trainShare: number }): number {
  return Math.max(1, Math.ceil((passes * p.images) / (p.batchImages * p.trainShare) - 1e-6));
}

/**
 * The steps' worth of batches that train the dataset (steps x trainShare, rounded down): what the recipe's steps
 * range, the guide's on the dataset alone, bounds. The plan's recommended steps are this range over trainShare.
 */
export function datasetSteps(steps: number, trainShare: number): number {
  return Math.floor(steps * trainShare + 1e-6);
}

/**
 * `regImages`: the regularisation images the trainer reads (dataset.reg_path; 0 or absent: none). Kohya's and
 * ai-toolkit's epochs do not depend on their count (any reg image pads to, or alternates with, the dataset);
 * the built-in trainer's does.
 */
export function epochSplit(contract: Contract, p: { images: number; steps: number; resolution: number; batch: EffectiveBatch; regImages?: number }): EpochSplit {
  const record = TRAINER_EPOCHS[contract.trainer.name];
  const resolutions = record.perResolution ? trainingResolutions(contract, p.resolution).length : 1;
  const { rule, regImages, trainShare } = regMix(contract, p);
  const imagePasses = passesOf(p.steps, { images: p.images, batchImages: p.batch.images, trainShare });
  // Each epoch trains every image `resolutions` times per repeat: the repeats aim at TARGET_EPOCHS epochs.
  const repeats = Math.max(1, Math.round(imagePasses / (TARGET_EPOCHS.epochs * resolutions)));
  const perCopy = p.images * repeats;
  // Entries one copy holds: Kohya registers exactly as many reg entries as training ones (train_util.py L2166-2182); the built-in pools R more per repeat.
  const entries = rule === "pad" ? 2 * perCopy : rule === "pool" ? (p.images + regImages) * repeats : perCopy;
  const batches = record.batchesPerCopy ? resolutions * Math.ceil(entries / p.batch.batch) : Math.ceil((resolutions * entries) / p.batch.batch);
  const trainSteps = Math.max(1, Math.ceil(batches / (p.batch.accumulation * p.batch.gpus)));
  // ai-toolkit: the epoch is the dataset's batches, taken on odd steps; each even step takes reg batches.
  const stepsPerEpoch = rule === "alternate" ? 2 * trainSteps : trainSteps;
  const perEpoch = rule === "pad" ? resolutions * perCopy : rule === "pool" ? resolutions * regImages * repeats : rule === "alternate" ? trainSteps : 0;
  return {
    repeats,
    resolutions,
    stepsPerEpoch,
    epochs: Math.max(1, Math.ceil(p.steps / stepsPerEpoch)),
    ...(rule !== "none" ? { reg: { images: regImages, rule, perEpoch, source: record.reg.source } } : {}),
    trainShare,
    imagePasses: Math.round(imagePasses * 10) / 10,
    source: record.source,
  };
}
