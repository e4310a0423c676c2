import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import type { TrainingData } from "@loraspec/core/lint/crop-rules.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { resolveBuckets } from "@loraspec/core/plan/buckets.js";
import { coverCropBox } from "@loraspec/engine/dataset/crop-geometry.js";
import { prepareDataset } from "@loraspec/engine/dataset/prepare-dataset.js";
import { MANIFEST_FILE, ManifestSchema } from "@loraspec/engine/dataset/prep-manifest.js";
import { trainingDataOf } from "@loraspec/engine/dataset/project-dataset.js";
import { findWorkerRoot, workerPython } from "@loraspec/engine/worker/worker-paths.js";
import { bucketContract } from "./bucket-contract.js";

/**
 * dataset.crop: attention has one home, prep (sharp's attention strategy). The built-in trainer trains
 * on prep's folder and must keep its crop: each prepared image, put in its bucket by the worker's own
 * code (train/buckets.py plan_entries + load_to_bucket, with the request's buckets from core), comes
 * out pixel for pixel as prep wrote it, cropped nowhere. Fails if the worker picks another bucket for a
 * prepared image or crops it again.
 */
const root = findWorkerRoot();
const python = workerPython(root);
const haveWorker = existsSync(python);

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loraspec-cropseam-"));
  mkdirSync(join(dir, "dataset"));
  // Each image has one bright block near an edge: the attention crop keeps it, the centre crop would not.
  const shapes = [
    { name: "wide", width: 600, height: 300, blob: { left: 20, top: 100 } },
    { name: "tall", width: 300, height: 620, blob: { left: 100, top: 540 } },
    { name: "odd", width: 517, height: 401, blob: { left: 430, top: 20 } },
  ];
  for (const s of shapes) {
    const blob = await sharp({ create: { width: 60, height: 60, channels: 3, background: { r: 255, g: 40, b: 10 } } }).png().toBuffer();
    await sharp({ create: { width: s.width, height: s.height, channels: 3, background: { r: 60, g: 60, b: 60 } } })
      .composite([{ input: blob, left: s.blob.left, top: s.blob.top }])
      .png()
      .toFile(join(dir, "dataset", `${s.name}.png`));
    writeFileSync(join(dir, "dataset", `${s.name}.txt`), `txcl ${s.name}`);
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function contract(crop: "center" | "attention") {
  return bucketContract({ resolution: 256, crop, buckets: { min_side: 128, max_side: 512 } });
}

async function prep(crop: "center" | "attention") {
  const c = contract(crop);
  const buckets = resolveBuckets(c, 256).buckets.filter((b) => b.resolution === 256);
  const gen = prepareDataset({ datasetDir: join(dir, "dataset"), outDir: join(dir, ".loraspec", "prepared"), resolution: 256, aspect: "buckets", buckets, crop, concurrency: 1 });
  let next = await gen.next();
  while (!next.done) next = await gen.next();
  return ManifestSchema.parse(JSON.parse(readFileSync(join(dir, ".loraspec", "prepared", MANIFEST_FILE), "utf8")));
}

describe("dataset.crop: attention holds in the built-in trainer (prep is the one home of the crop)", () => {
  it("lint refuses attention on unprepared or centre-prepared images, with the field and the fix; passes once prep attention-cropped", async () => {
    const c = contract("attention");
    const rule = (trainingData: TrainingData | undefined) => lintContract(c, { trainingData }).filter((f) => f.rule === "crop-needs-prep");
    expect(rule({ prepared: false })).toEqual([expect.objectContaining({ severity: "error", field: "dataset.crop", fix: expect.stringContaining("loraspec prep") })]);
    expect(rule({ prepared: true, crop: "center" })[0]?.message).toContain("cropped with 'center'");
    expect(rule({ prepared: true, crop: "attention" })).toEqual([]);
    expect(rule(undefined)).toEqual([]);
    expect(lintContract(contract("center"), { trainingData: { prepared: false } }).filter((f) => f.rule === "crop-needs-prep")).toEqual([]);
    // The engine reads what prep did from its manifest.
    await prep("center");
    expect(await trainingDataOf(dir, join(dir, "dataset"))).toMatchObject({ prepared: true, crop: "center" });
  });

  it.skipIf(!haveWorker)("the worker's bucket and crop of each prepared image is prep's output, pixel for pixel", async () => {
    const manifest = await prep("attention");
    expect(await trainingDataOf(dir, join(dir, "dataset"))).toMatchObject({ prepared: true, crop: "attention" });
    const entries = manifest.entries.filter((e) => e.status === "prepared");
    expect(entries).toHaveLength(3);
    // The attention crop moved at least one box off the centre (else this test proves nothing about it).
    expect(entries.some((e) => JSON.stringify(e.crop) !== JSON.stringify(coverCropBox({ width: e.width, height: e.height }, { width: e.outputWidth!, height: e.outputHeight! })))).toBe(true);
    const c = contract("attention");
    const request = compileDiffusers(c, planRun(c), { datasetDir: join(dir, ".loraspec", "prepared"), outputDir: join(dir, "out"), basePath: join(dir, "tiny"), cacheDir: join(dir, "cache") }).request;
    const code = [
      "import json, sys, numpy as np, torch",
      "torch.set_num_threads(1)",
      "from PIL import Image",
      "from loraspec_worker.train.buckets import plan_entries, load_to_bucket",
      "paths, buckets = json.loads(sys.argv[1]), json.loads(sys.argv[2])",
      "out = []",
      "for i, bucket in plan_entries([(p, '') for p in paths], buckets):",
      "    pixels, original, crop = load_to_bucket(paths[i], bucket)",
      "    ref = np.asarray(Image.open(paths[i]).convert('RGB'), dtype=np.float32) / 127.5 - 1.0",
      "    got = pixels.permute(1, 2, 0).numpy()",
      "    out.append({'path': paths[i], 'bucket': [bucket['width'], bucket['height']], 'crop': list(crop), 'diff': float(np.abs(got - ref).max()) if got.shape == ref.shape else None})",
      "print(json.dumps(out))",
    ].join("\n");
    const paths = entries.map((e) => join(dir, ".loraspec", "prepared", e.output!));
    const env = { ...process.env, PYTHONPATH: join(root, "worker"), OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
    const got = JSON.parse(execFileSync(python, ["-c", code, JSON.stringify(paths), JSON.stringify(request.buckets)], { env, encoding: "utf8" })) as { path: string; bucket: number[]; crop: number[]; diff: number | null }[];
    expect(got).toHaveLength(entries.length * new Set(request.buckets.map((b: { resolution: number }) => b.resolution)).size);
    for (const [k, e] of entries.entries()) {
      expect(got[k]).toEqual({ path: paths[k], bucket: [e.outputWidth, e.outputHeight], crop: [0, 0], diff: 0 });
    }
  });
});
