import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContractSchema, type Contract } from "@loraspec/core/contract/schema.js";
import type { DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import { BASE_MODELS, getBaseModel, type ModelFamily } from "@loraspec/core/knowledge/base-models.js";
import { COMPATIBILITY } from "@loraspec/core/knowledge/trainers.js";
import { getTrainerSide } from "@loraspec/core/knowledge/trainer-resolution.js";
import { aiToolkitBucket } from "@loraspec/core/plan/ai-toolkit-bucket.js";
import { assignBucket } from "@loraspec/core/plan/buckets.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { MANIFEST_FILE, ManifestSchema, type PrepManifest } from "@loraspec/engine/dataset/prep-manifest.js";
import { prepShapes } from "@loraspec/engine/dataset/prep-shapes.js";
import { photoLike } from "./make-images.js";
import { runPrep, trainerContract, type TrainerName } from "./trainer-prep.js";

/**
 * "What shape does trainer T train image I at" has one home (core plan/trainer-buckets.ts trainingShape):
 * for every trainer that buckets here (Kohya, ai-toolkit, the built-in trainer) x each model family it
 * compiles x image sizes and aspects x training resolutions, the shape `loraspec prep` writes an image at
 * (prepShapes, as the CLI calls it) is the shape the plan says that trainer trains it at, and ai-toolkit's
 * picker maps prep's output to itself (ai-toolkit then neither rescales nor crops it).
 */
const TRAINERS = ["kohya", "ai-toolkit", "diffusers"] as const;
const RESOLUTIONS = [256, 400];

/** One compiled base per (trainer, family): the table follows the compatibility records. */
const ROWS = TRAINERS.flatMap((trainer) => {
  const seen = new Set<ModelFamily>();
  return COMPATIBILITY.filter((r) => r.trainer === trainer && r.supported && r.compiles !== false).flatMap((r) => {
    const model = getBaseModel(r.base);
    if (!model || seen.has(model.family)) return [];
    seen.add(model.family);
    return [{ trainer, base: model.id, family: model.family }];
  });
});

/** Sizes as fractions of the resolution: square, landscape, portrait, odd, under resolution² (not upscaled by ai-toolkit), up to 2.8:1. */
const FRACTIONS: Array<[number, number]> = [
  [1, 1],
  [1.5, 1],
  [0.8, 1.2],
  [1.31, 1.02],
  [0.7, 0.7],
  [0.62, 1.15],
  [2.8, 1],
  [1, 2.2],
  [3.1, 2.05],
];
const sizesAt = (r: number) => FRACTIONS.map(([w, h], k) => ({ name: `i${k}`, width: Math.round(w * r) + k, height: Math.round(h * r) }));

const contractFor = (trainer: TrainerName, base: string, resolution: number): Contract => trainerContract(trainer, base, resolution, "buckets", 1280);

const scanOf = (sizes: ReadonlyArray<{ name: string; width: number; height: number }>): DatasetSummary => ({
  path: "./dataset",
  images: sizes.map((s) => ({ file: `${s.name}.png`, width: s.width, height: s.height, format: "png", caption: "txcl" })),
  unreadable: [],
});

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loraspec-trainershapes-"));
  for (const r of RESOLUTIONS) {
    mkdirSync(join(dir, `d${r}`));
    for (const [k, s] of sizesAt(r).entries()) await photoLike(s.width, s.height, 500 + k + r).png({ compressionLevel: 1 }).toFile(join(dir, `d${r}`, `${s.name}.png`));
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function prep(c: Contract, r: number, out: string): Promise<PrepManifest> {
  await runPrep({ datasetDir: join(dir, `d${r}`), outDir: join(dir, out), contract: c, aspect: "buckets", resolution: r });
  return ManifestSchema.parse(JSON.parse(readFileSync(join(dir, out, MANIFEST_FILE), "utf8")));
}

describe("prep writes each image at the shape the plan says its trainer trains it at", () => {
  it("the table covers Kohya (SDXL, FLUX.1), every ai-toolkit family with a record, and the built-in trainer", () => {
    const families = (t: string) => ROWS.filter((r) => r.trainer === t).map((r) => r.family);
    expect(families("kohya")).toEqual(expect.arrayContaining(["sdxl", "flux1"]));
    expect(families("ai-toolkit").sort()).toEqual(["flux1", "flux2", "qwen-image", "sdxl", "zimage"]);
    expect(families("diffusers").length).toBeGreaterThan(0);
    expect(BASE_MODELS.length).toBeGreaterThan(0);
  });

  it.each(ROWS.flatMap((row) => RESOLUTIONS.map((r) => [row.trainer, row.family, r, row.base] as const)))("%s %s at %i", async (trainer, family, r, base) => {
    const c = contractFor(trainer, base, r);
    const sizes = sizesAt(r);
    const manifest = await prep(c, r, `${trainer}-${family}-${r}`);
    const wrote = new Map(manifest.entries.filter((e) => e.status === "prepared").map((e) => [e.source, { width: e.outputWidth!, height: e.outputHeight! }]));
    expect(wrote.size).toBe(sizes.length);
    const record = getTrainerSide("ai-toolkit", family);
    const own = trainer === "ai-toolkit" && record?.bucketed.rounding === "ai-toolkit-area" ? record.bucketed.divisibility : undefined;
    if (trainer === "ai-toolkit") expect(own).toBeDefined();
    for (const s of sizes) {
      const prepared = wrote.get(`${s.name}.png`)!;
      // The plan of this one image: ai-toolkit's shapes are the picker's per image; a set's is the bucket of the image's aspect.
      const plan = planRun(c, scanOf([s]));
      const atR = plan.buckets!.buckets.filter((b) => b.resolution === r);
      const planned = own !== undefined ? atR : [assignBucket(s.width, s.height, atR)];
      expect(plan.buckets!.picker).toBe(own !== undefined ? "ai-toolkit" : "set");
      expect(planned.map(({ width, height }) => ({ width, height })), `${s.width}x${s.height}`).toEqual([prepared]);
      if (own !== undefined) {
        expect(aiToolkitBucket(s.width, s.height, r, own)).toEqual(prepared);
        // ai-toolkit re-buckets prep's output: it maps to itself, so nothing is rescaled or cut.
        expect(aiToolkitBucket(prepared.width, prepared.height, r, own)).toEqual(prepared);
      }
    }
    // The files on disk are the manifest's sizes.
    for (const e of manifest.entries.filter((x) => x.status === "prepared").slice(0, 3)) {
      const meta = await sharp(join(dir, `${trainer}-${family}-${r}`, e.output!)).metadata();
      expect({ width: meta.width, height: meta.height }).toEqual({ width: e.outputWidth, height: e.outputHeight });
    }
    if (own !== undefined) expect(manifest.settings.shapes).toBe(`ai-toolkit, divisibility ${own}`);
    else expect(manifest.settings.buckets).toEqual(plan0(c, r));
  });

  it("without a contract, or with one that does not bucket, prep keeps core's default set (trainer-independent)", () => {
    expect(prepShapes({ aspect: "buckets", resolution: 1024 })).toBeUndefined();
    const square = ContractSchema.parse({ ...contractFor("ai-toolkit", "flux1-dev", 1024), dataset: { path: "./dataset", resolution: 1024, aspect: "square" } });
    expect(prepShapes({ contract: square, aspect: "buckets", resolution: 1024 })).toBeUndefined();
    expect(prepShapes({ contract: contractFor("ai-toolkit", "flux1-dev", 1024), aspect: "square", resolution: 1024 })).toBeUndefined();
  });
});

/** The set a Kohya / built-in manifest records: core's set at the resolution prep crops at. */
function plan0(c: Contract, r: number): string[] {
  return planRun(c).buckets!.buckets.filter((b) => b.resolution === r).map((b) => `${b.width}x${b.height}`);
}
