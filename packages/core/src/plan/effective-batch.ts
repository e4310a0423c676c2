import type { Contract } from "../contract/schema.js";
import { trainerReceives } from "../compile/trainer-receives.js";

/**
 * Images one optimizer step trains on: batch_size x gradient_accumulation x every GPU of every host
 * The one home of that product: the plan's steps <-> passes per image, its epochs, and lint's passes-per-image and
 * steps/passes rules all read it from here. A trainer that is not handed the batch (compile/trainer-receives.ts: fal's
 * hosted endpoints pick their own) counts as batch 1, the guide's steps basis: batch_size, gradient_accumulation and
 * hardware.gpus are not sent to it (lint trainer-ignores-field says so). Pure.
 */
export interface EffectiveBatch {
  batch: number;
  accumulation: number;
  gpus: number;
  /** batch x accumulation x gpus. */
  images: number;
}

export function effectiveBatchOf(contract: Contract): EffectiveBatch {
  if (!trainerReceives(contract).settings.batch) return { batch: 1, accumulation: 1, gpus: 1, images: 1 };
  const hp = contract.hyperparameters;
  const gpus = contract.hardware.kind === "fal" ? 1 : contract.hardware.gpus * contract.hardware.nodes;
  return { batch: hp.batch_size, accumulation: hp.gradient_accumulation, gpus, images: hp.batch_size * hp.gradient_accumulation * gpus };
}

/** "batch 32 x accumulation 4 x 2 GPUs" (the factors above 1; "batch 1" when all are 1). */
export function effectiveBatchText(b: EffectiveBatch): string {
  const parts = [`batch ${b.batch}`, ...(b.accumulation > 1 ? [`accumulation ${b.accumulation}`] : []), ...(b.gpus > 1 ? [`${b.gpus} GPUs`] : [])];
  return parts.length > 1 ? `${parts.join(" x ")} = ${b.images} images per step` : parts[0]!;
}
