import type { Contract } from "../contract/schema.js";
import { TARGET_EPOCHS } from "../knowledge/recipes.js";
import { TRAINER_EPOCHS } from "../knowledge/trainer-epochs.js";
import type { EffectiveBatch } from "./effective-batch.js";
import { trainingResolutions } from "./training-resolutions.js";

/**
 * The plan's repeats x epochs split, counted as the trainer's compiled config runs an epoch
 * (knowledge/trainer-epochs.ts): the dataset x repeats once per training resolution where the trainer
 * makes one dataset per resolution (Kohya's [[datasets]], ai-toolkit's resolution list, the built-in's
 * entries), each copy batched on its own, then split over accumulation and GPUs. Pure.
 */
export interface EpochSplit {
  repeats: number;
  /** Copies of the dataset in one epoch: the training resolutions where the trainer trains each, else 1. */
  resolutions: number;
  stepsPerEpoch: number;
  epochs: number;
  source: string;
}

export function epochSplit(contract: Contract, p: { images: number; steps: number; resolution: number; batch: EffectiveBatch }): EpochSplit {
  const record = TRAINER_EPOCHS[contract.trainer.name];
  const resolutions = record.perResolution ? trainingResolutions(contract, p.resolution).length : 1;
  const passesPerImage = (p.steps * p.batch.images) / p.images;
  // Each epoch trains every image `resolutions` times per repeat: the repeats aim at TARGET_EPOCHS epochs.
  const repeats = Math.max(1, Math.round(passesPerImage / (TARGET_EPOCHS.epochs * resolutions)));
  const perCopy = p.images * repeats;
  const batches = record.batchesPerCopy ? resolutions * Math.ceil(perCopy / p.batch.batch) : Math.ceil((resolutions * perCopy) / p.batch.batch);
  const stepsPerEpoch = Math.max(1, Math.ceil(batches / (p.batch.accumulation * p.batch.gpus)));
  return { repeats, resolutions, stepsPerEpoch, epochs: Math.max(1, Math.ceil(p.steps / stepsPerEpoch)), source: record.source };
}
