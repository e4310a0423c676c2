import { stringify } from "yaml";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";

/** A built-in-trainer SDXL contract with aspect buckets; `dataset` adds resolution, buckets, crop. */
export function bucketContract(dataset: Record<string, unknown>) {
  const text = stringify({
    version: 1,
    name: "txcl",
    base: { model: "sdxl", path: "./tiny" },
    trainer: { name: "diffusers" },
    target: "character",
    dataset: { path: "./dataset", aspect: "buckets", ...dataset },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 10, save_every: 5, optimizer: "adamw" },
  });
  return parseContractText({ text, file: "lora.yaml" });
}
