import { ContractSchema, type Contract, type ContractInput } from "@loraspec/core/contract/schema.js";
import type { BaseModelId } from "@loraspec/core/knowledge/base-models.js";

type Target = "character" | "style" | "product";

/** A realistic contract for the compiler goldens: one base model, one target, one trainer. */
export function makeContract(params: {
  base: BaseModelId;
  target: Target;
  trainer: "kohya" | "ai-toolkit" | "fal";
  path?: string;
  overrides?: Partial<ContractInput>;
}): Contract {
  const input: ContractInput = {
    version: 1,
    name: `txcl-${params.target}`,
    base: { model: params.base, ...(params.path ? { path: params.path } : {}) },
    trainer: { name: params.trainer },
    hardware: { kind: params.trainer === "fal" ? "fal" : "local", gpu: "RTX 4090", vram_gb: 24 },
    target: params.target,
    dataset: { path: "./dataset", expected_images: 20, aspect: params.target === "style" ? "buckets" : "square" },
    captions: { style: params.base === "sdxl" ? "tags" : "natural" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 1500, rank: 16, save_every: 250 },
    validation: { trigger_prompts: ["a photo of {trigger}", "{trigger} on the beach"] },
    ...params.overrides,
  };
  return ContractSchema.parse(input);
}

export const PATHS = {
  datasetDir: "/project/.loraspec/runs/r1/dataset",
  outputDir: "/project/.loraspec/runs/r1/out",
  configDir: "/project/.loraspec/runs/r1",
  trainerDir: "/home/u/.cache/loraspec/trainers/kohya-v0.10.1",
  venvDir: "/home/u/.cache/loraspec/trainers/kohya-v0.10.1/.venv",
};

export const TARGETS: readonly Target[] = ["character", "style", "product"];
