import type { BaseModelId } from "../knowledge/base-models.js";
import { getBaseModel } from "../knowledge/base-models.js";
import { getCompatibility, trainerRuns } from "../knowledge/trainers.js";
import { TRAINER_IDS, type TrainerId } from "../contract/ids.js";
import { LoraspecError } from "../errors.js";

export type ExternalTrainer = "kohya" | "ai-toolkit" | "fal";

/** The contract trainers loraspec drives that train `model` and that it compiles for (what check accepts). */
export function trainersFor(model: BaseModelId): TrainerId[] {
  return TRAINER_IDS.filter((t) => trainerRuns(t, model));
}

/**
 * The fix for a trainer that does not train `model` (or that loraspec does not compile for it): the
 * trainers that do, each as the contract value to write (fal with hardware.kind: fal, a local one with
 * hardware.kind: local where the contract is on the other kind), never one that is refused too (the
 * compatibility records' `instead` names trainers outside what loraspec drives: SD3.5 Large's "kohya or
 * diffusers" sent each refusal to the other). With none, a base loraspec trains.
 */
export function trainerFix(trainer: TrainerId, model: BaseModelId, hardware: "local" | "fal" = trainer === "fal" ? "fal" : "local"): string {
  const label = getBaseModel(model)?.label ?? model;
  const others = trainersFor(model).filter((t) => t !== trainer);
  if (others.length === 0) {
    return `No trainer loraspec drives trains ${label} yet: pick another base.model (base.model: flux1-dev or sdxl).`;
  }
  const as = (t: TrainerId) => {
    const kind = t === "fal" ? "fal" : "local";
    return `trainer.name: ${t}${kind !== hardware ? ` (with hardware.kind: ${kind})` : ""}`;
  };
  return `Use ${others.map(as).join(", or ")}: ${others.length > 1 ? "they train" : "it trains"} ${label}.`;
}

/**
 * Throws E_TRAINER_UNSUPPORTED when `trainer` cannot train `model` (the knowledge base's
 * compatibility matrix), or can but loraspec has no compiler profile for it yet (`compiles`).
 */
export function assertTrainerSupports(trainer: ExternalTrainer, model: BaseModelId, compiles: boolean): void {
  const record = getCompatibility(trainer, model);
  if (!record?.supported) {
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `${trainer} cannot train a LoRA for base model "${model}".`, {
      field: "trainer.name",
      hint: `${trainerFix(trainer, model)} (source: ${record?.source ?? "no compatibility record"})`,
    });
  }
  if (!compiles) {
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `${trainer} can train "${model}", but loraspec does not compile ${trainer} configs for it yet.`, {
      field: "trainer.name",
      hint: trainerFix(trainer, model),
    });
  }
}
