import type { Contract } from "../../contract/schema.js";
import { LoraspecError } from "../../errors.js";
import { assertNetworkSupported } from "../../knowledge/network-types.js";
import { assertTrainerSupports } from "../../trainers/support.js";
import { resolveTraining, type CompilePlan } from "../../trainers/compile-input.js";
import { FAL_DEFAULT_ENDPOINT, FAL_TRAINER_ENDPOINTS, type FalTrainerEndpoint } from "./fal-endpoints.js";

export interface FalCompiled {
  trainer: "fal";
  endpoint: string;
  /** The JSON input for `fal.queue.submit(endpoint, { input })`. */
  input: Record<string, unknown>;
  /** The record the field names came from (its source and whether it is verified). */
  record: FalTrainerEndpoint;
}

/**
 * Compiles a contract (+ plan) into a fal.ai trainer endpoint's input, given the URL of the dataset
 * ZIP (images + same-name .txt captions) already uploaded to fal storage (trainers.md §4).
 */
export function compileFal(contract: Contract, plan: CompilePlan, params: { zipUrl: string }): FalCompiled {
  assertTrainerSupports("fal", contract.base.model, FAL_DEFAULT_ENDPOINT[contract.base.model] !== undefined);
  assertNetworkSupported("fal", contract.network.type);
  const endpointId = contract.trainer.endpoint ?? FAL_DEFAULT_ENDPOINT[contract.base.model];
  const record = FAL_TRAINER_ENDPOINTS.find((e) => e.endpoint === endpointId);
  if (!record) {
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `loraspec does not know the fal endpoint "${endpointId}".`, {
      field: "trainer.endpoint",
      hint: `Known trainer endpoints: ${FAL_TRAINER_ENDPOINTS.map((e) => e.endpoint).join(", ")}.`,
    });
  }
  if (record.base !== contract.base.model) {
    throw new LoraspecError(
      "E_TRAINER_UNSUPPORTED",
      `fal endpoint ${record.endpoint} trains ${record.base}, but the contract's base model is ${contract.base.model}.`,
      { field: "trainer.endpoint", hint: `Use ${FAL_DEFAULT_ENDPOINT[contract.base.model] ?? "another trainer"} or change base.model.` },
    );
  }
  const r = resolveTraining(contract, plan);
  const trigger = contract.trigger.word;
  const input: Record<string, unknown> = { [record.zipField]: params.zipUrl };
  // default_caption endpoints have no trigger field: the trigger reaches them through the captions,
  // and the default caption (for images without a .txt) names it too. Without one they fail (§4.1).
  input[record.triggerField] = trigger;
  if (record.takesLearningRate) input.learning_rate = r.learningRate;
  input.steps = r.steps;
  if (record.targetField) input[record.targetField.name] = record.targetField.values[contract.target];
  if (record.endpoint === "fal-ai/flux-lora-fast-training") input.create_masks = contract.target === "character";
  for (const flag of record.cropFlags ?? []) input[flag.name] = flag.on.includes(contract.target);
  return { trainer: "fal", endpoint: record.endpoint, input, record };
}
