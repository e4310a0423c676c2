import type { BaseModelId } from "../knowledge/base-models.js";
import { getCompatibility } from "../knowledge/trainers.js";
import { LoraspecError } from "../errors.js";

export type ExternalTrainer = "kohya" | "ai-toolkit" | "fal";

/**
 * Throws E_TRAINER_UNSUPPORTED when `trainer` cannot train `model` (the knowledge base's
 * compatibility matrix), or can but loraspec has no compiler profile for it yet (`compiles`).
 */
export function assertTrainerSupports(trainer: ExternalTrainer, model: BaseModelId, compiles: boolean): void {
  const record = getCompatibility(trainer, model);
  if (!record?.supported) {
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `${trainer} cannot train a LoRA for base model "${model}".`, {
      field: "trainer.name",
      hint: `${record?.instead ? `Use ${record.instead}. ` : ""}(source: ${record?.source ?? "no compatibility record"})`,
    });
  }
  if (!compiles) {
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `${trainer} can train "${model}", but loraspec does not compile ${trainer} configs for it yet.`, {
      field: "trainer.name",
      hint: "Use trainer.name: diffusers (the built-in trainer), or another trainer that loraspec compiles for this base.",
    });
  }
}
