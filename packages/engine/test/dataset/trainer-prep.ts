import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { ContractSchema, type Contract } from "@loraspec/core/contract/schema.js";
import { prepareDataset, type PrepSummary } from "@loraspec/engine/dataset/prepare-dataset.js";
import { prepShapes } from "@loraspec/engine/dataset/prep-shapes.js";
import { photoLike } from "./make-images.js";

export type TrainerName = "kohya" | "ai-toolkit" | "diffusers";
export type Aspect = "square" | "buckets";

/** The prep set-ups the per-trainer prep specs run: each trainer bucketed and square, and prep with no contract. */
export const PREP_SETUPS: ReadonlyArray<{ label: string; trainer?: TrainerName; base?: string; aspect: Aspect }> = [
  { label: "kohya sdxl buckets", trainer: "kohya", base: "sdxl", aspect: "buckets" },
  { label: "kohya flux1 square", trainer: "kohya", base: "flux1-dev", aspect: "square" },
  { label: "ai-toolkit flux1 buckets", trainer: "ai-toolkit", base: "flux1-dev", aspect: "buckets" },
  { label: "ai-toolkit sdxl buckets", trainer: "ai-toolkit", base: "sdxl", aspect: "buckets" },
  { label: "ai-toolkit flux1 square", trainer: "ai-toolkit", base: "flux1-dev", aspect: "square" },
  { label: "built-in (diffusers) sdxl buckets", trainer: "diffusers", base: "sdxl", aspect: "buckets" },
  { label: "no contract, buckets (core's default set)", aspect: "buckets" },
  { label: "no contract, square", aspect: "square" },
];

/** A contract for `trainer` on `base` at `resolution`; bucketed with sides 128..maxSide on step 64. */
export function trainerContract(trainer: TrainerName, base: string, resolution: number, aspect: Aspect, maxSide = 640): Contract {
  return ContractSchema.parse({
    version: 1,
    name: "txcl",
    base: { model: base, ...(trainer === "diffusers" ? { path: "./tiny" } : {}) },
    trainer: { name: trainer },
    target: "character",
    dataset: { path: "./dataset", resolution, aspect, ...(aspect === "buckets" ? { buckets: { min_side: 128, max_side: maxSide, step: 64 } } : {}) },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 10, save_every: 5 },
  });
}

/** `loraspec prep` as the CLI runs it for `contract` (prepShapes), to the end; its summary. */
export async function runPrep(o: { datasetDir: string; outDir: string; contract: Contract | undefined; aspect: Aspect; resolution: number }): Promise<PrepSummary> {
  const shapes = prepShapes({ contract: o.contract, aspect: o.aspect, resolution: o.resolution });
  const gen = prepareDataset({ datasetDir: o.datasetDir, outDir: o.outDir, resolution: o.resolution, aspect: o.aspect, shapes, nearDuplicate: { pixelAtZero: 0 }, concurrency: 1 });
  let next = await gen.next();
  while (!next.done) next = await gen.next();
  return next.value;
}

/**
 * A dataset folder of photo-like PNGs at `sizes` (seeded from `seed`), made before the spec's tests and removed
 * after; `prep` runs `loraspec prep` over it for a contract into `out` under the same temporary folder.
 */
export function sizedDataset(o: { prefix: string; sizes: ReadonlyArray<{ name: string; width: number; height: number }>; seed: number; resolution: number }) {
  let dir = "";
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), o.prefix));
    mkdirSync(join(dir, "d"));
    for (const [k, s] of o.sizes.entries()) await photoLike(s.width, s.height, o.seed + k).png({ compressionLevel: 1 }).toFile(join(dir, "d", `${s.name}.png`));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return {
    datasetDir: () => join(dir, "d"),
    prep: (contract: Contract | undefined, aspect: Aspect, out: string): Promise<PrepSummary> =>
      runPrep({ datasetDir: join(dir, "d"), outDir: join(dir, out), contract, aspect, resolution: o.resolution }),
  };
}
