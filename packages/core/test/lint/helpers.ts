import { ContractSchema, type Contract, type ContractInput } from "@loraspec/core/contract/schema.js";
import type { DatasetImage, DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";

/** A clean FLUX.1 character contract; each test changes one thing. */
export const GOOD: ContractInput = {
  version: 1,
  name: "txcl-character",
  base: { model: "flux1-dev", quantize: "fp8" },
  trainer: { name: "ai-toolkit", version: "0.12.26" },
  hardware: { kind: "local", gpu: "RTX 4090", vram_gb: 24, price_per_hour: 0.7 },
  target: "character",
  dataset: { path: "./dataset", expected_images: 20 },
  captions: { style: "natural" },
  trigger: { word: "txcl" },
  hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250 },
  limits: { vram_ceiling_gb: 24, max_cost_usd: 5 },
  failure: { on_divergence: "stop", on_oom: "fallback" },
};

type Patch = { [K in keyof ContractInput]?: ContractInput[K] extends object | undefined ? Partial<NonNullable<ContractInput[K]>> | ContractInput[K] : ContractInput[K] };

export function contract(patch: Patch = {}, base: ContractInput = GOOD): Contract {
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const prev = (base as Record<string, unknown>)[key];
    merged[key] = value && typeof value === "object" && !Array.isArray(value) && prev && typeof prev === "object" ? { ...prev, ...value } : value;
  }
  return ContractSchema.parse(merged);
}

export function image(file: string, over: Partial<DatasetImage> = {}): DatasetImage {
  return { file, width: 1024, height: 1024, format: "png", caption: "txcl, a woman with short red hair smiling in a park", ...over };
}

export function dataset(n: number, make: (i: number) => Partial<DatasetImage> = () => ({})): DatasetSummary {
  return { path: "./dataset", images: Array.from({ length: n }, (_, i) => image(`img${String(i).padStart(2, "0")}.png`, make(i))), unreadable: [] };
}
