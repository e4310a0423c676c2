import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { assignBucket, resolveBuckets, type Bucket } from "@loraspec/core/plan/buckets.js";
import { prepareDataset } from "@loraspec/engine/dataset/prepare-dataset.js";
import { MANIFEST_FILE, ManifestSchema, type PrepManifest } from "@loraspec/engine/dataset/prep-manifest.js";
import { findWorkerRoot, workerPython } from "@loraspec/engine/worker/worker-paths.js";
import { bucketContract } from "./bucket-contract.js";
import { photoLike, prng } from "./make-images.js";

/**
 * An image's bucket is one decision (core's assignBucket over core's resolveBuckets set): prep crops
 * the raw image to it, and the built-in trainer (train/buckets.py plan_entries on the raw folder)
 * puts the same image in the same bucket. Near-boundary aspects are built where nearest-by-log
 * (prep's old pickBucket) and nearest-by-ratio (sd-scripts, core, the worker) disagree: between two
 * adjacent bucket aspects a < b, log picks b above sqrt(ab) and the ratio picks a below (a + b) / 2.
 */
const root = findWorkerRoot();
const python = workerPython(root);
const haveWorker = existsSync(python);
const RES = 256;

interface Shape {
  name: string;
  width: number;
  height: number;
}

function contract(resolution: number, buckets?: Record<string, number>) {
  return bucketContract({ resolution, ...(buckets ? { buckets } : {}) });
}

/** The old rule (nearest by log aspect), only to prove the table reaches where it differs. */
function nearestByLog(width: number, height: number, buckets: readonly Bucket[]): Bucket {
  const target = Math.log(width / height);
  return buckets.reduce((best, b) => (Math.abs(Math.log(b.width / b.height) - target) < Math.abs(Math.log(best.width / best.height) - target) - 1e-9 ? b : best));
}

/** Prep skips an image longer than 3:1 (EXTREME_ASPECT_RATIO), so the table stays within it. */
const MAX_ASPECT = 3;

/** One image per pair of adjacent bucket aspects, its aspect strictly between the log and the ratio midpoints. */
function boundaryShapes(buckets: readonly Bucket[]): Shape[] {
  const aspects = [...new Set(buckets.map((b) => b.width / b.height))].filter((r) => Math.max(r, 1 / r) <= MAX_ASPECT).sort((x, y) => x - y);
  const out: Shape[] = [];
  for (let i = 1; i < aspects.length; i++) {
    const [a, b] = [aspects[i - 1]!, aspects[i]!];
    const [low, high] = [Math.sqrt(a * b), (a + b) / 2];
    for (let short = 200; short < 400; short++) {
      const [width, height] = (low + high) / 2 < 1 ? [short, Math.round(short / ((low + high) / 2))] : [Math.round(short * ((low + high) / 2)), short];
      if (width / height > low && width / height < high) {
        out.push({ name: `edge-${i}`, width, height });
        break;
      }
    }
  }
  return out;
}

/** Seeded sizes spread over log aspect (1:3 to 3:1), short side 200-399. */
function randomShapes(n: number, seed: number): Shape[] {
  const rand = prng(seed);
  return Array.from({ length: n }, (_, i) => {
    const aspect = Math.exp((rand() * 2 - 1) * Math.log(MAX_ASPECT * 0.99));
    const short = 200 + Math.floor(rand() * 200);
    return aspect < 1 ? { name: `rand-${i}`, width: short, height: Math.round(short / aspect) } : { name: `rand-${i}`, width: Math.round(short * aspect), height: short };
  });
}

async function writeShapes(dir: string, shapes: readonly Shape[]): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (const [k, s] of shapes.entries()) await photoLike(s.width, s.height, 100 + k).png({ compressionLevel: 1 }).toFile(join(dir, `${s.name}.png`));
}

async function prep(params: Parameters<typeof prepareDataset>[0]): Promise<PrepManifest> {
  const gen = prepareDataset(params);
  for (let next = await gen.next(); !next.done; next = await gen.next());
  return ManifestSchema.parse(JSON.parse(readFileSync(join(params.outDir, MANIFEST_FILE), "utf8")));
}

/** Prep's bucket (its output size) of each source, by name. */
function prepBuckets(manifest: PrepManifest): Map<string, string> {
  return new Map(manifest.entries.filter((e) => e.status === "prepared").map((e) => [e.source, `${e.outputWidth}x${e.outputHeight}`]));
}

let dir: string;
const contractBuckets = { min_side: 128, max_side: 512, step: 32 };
const set = resolveBuckets(contract(RES, contractBuckets), RES).buckets;
const shapes = [...boundaryShapes(set), ...randomShapes(24, 7)];
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loraspec-bucketseam-"));
  await writeShapes(join(dir, "dataset"), shapes);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("an image's bucket: prep, core and the built-in trainer choose the same one", () => {
  it("the table reaches where nearest-by-log and nearest-by-ratio disagree", () => {
    const edges = shapes.filter((s) => s.name.startsWith("edge-"));
    expect(edges.length).toBeGreaterThanOrEqual(6);
    for (const s of edges) expect(nearestByLog(s.width, s.height, set)).not.toEqual(assignBucket(s.width, s.height, set));
  });

  it("prep crops each image to core's assignBucket over the contract's set", async () => {
    const got = prepBuckets(await prep({ datasetDir: join(dir, "dataset"), outDir: join(dir, "prepared"), resolution: RES, aspect: "buckets", buckets: set, concurrency: 1 }));
    expect(got.size).toBe(shapes.length);
    const want = new Map(shapes.map((s) => [`${s.name}.png`, ((b) => `${b.width}x${b.height}`)(assignBucket(s.width, s.height, set))]));
    expect(Object.fromEntries(got)).toEqual(Object.fromEntries(want));
  });

  it("a folder cut by another rule under the same settings is re-cut on the next run (the output size is compared)", async () => {
    const outDir = join(dir, "prepared-old");
    const params = { datasetDir: join(dir, "dataset"), outDir, resolution: RES, aspect: "buckets" as const, buckets: set, concurrency: 1 };
    const first = await prep(params);
    // As prep's old nearest-by-log rule left it: the edge images at the other bucket's size, in the manifest and on disk.
    const edges = new Map(shapes.filter((s) => s.name.startsWith("edge-")).map((s) => [`${s.name}.png`, nearestByLog(s.width, s.height, set)]));
    for (const e of first.entries) {
      const old = edges.get(e.source);
      if (!old) continue;
      [e.outputWidth, e.outputHeight] = [old.width, old.height];
      await sharp({ create: { width: old.width, height: old.height, channels: 3, background: "#808080" } }).png().toFile(join(outDir, e.output!));
    }
    writeFileSync(join(outDir, MANIFEST_FILE), JSON.stringify(first));
    const gen = prepareDataset(params);
    let next = await gen.next();
    while (!next.done) next = await gen.next();
    expect([...next.value.processed].sort()).toEqual([...edges.keys()].sort());
    for (const [source, bucket] of prepBuckets(ManifestSchema.parse(JSON.parse(readFileSync(join(outDir, MANIFEST_FILE), "utf8"))))) {
      const meta = await sharp(join(outDir, source)).metadata();
      expect(`${meta.width}x${meta.height}`).toBe(bucket);
    }
  });

  it("with no bucket set given, prep uses core's default set for the resolution (what plan and the trainer use)", async () => {
    // At 1024 core's defaults (sd-scripts': max side 1024) and prep's old fallback (max side 2048) differ for every non-square photo.
    const resolution = 1024;
    const defaults = resolveBuckets(contract(resolution), resolution).buckets;
    const few: Shape[] = [
      { name: "wide", width: 900, height: 600 },
      { name: "tall", width: 560, height: 840 },
      { name: "near-square", width: 700, height: 690 },
    ];
    await writeShapes(join(dir, "dataset-default"), few);
    const manifest = await prep({ datasetDir: join(dir, "dataset-default"), outDir: join(dir, "prepared-default"), resolution, aspect: "buckets", concurrency: 1 });
    const want = Object.fromEntries(few.map((s) => [`${s.name}.png`, ((b) => `${b.width}x${b.height}`)(assignBucket(s.width, s.height, defaults))]));
    expect(Object.fromEntries(prepBuckets(manifest))).toEqual(want);
    expect(manifest.settings.buckets).toEqual(defaults.map((b) => `${b.width}x${b.height}`));
  });

  it.skipIf(!haveWorker)("the worker puts each raw image in prep's bucket, and each prepared image stays in it", async () => {
    const manifest = await prep({ datasetDir: join(dir, "dataset"), outDir: join(dir, "prepared"), resolution: RES, aspect: "buckets", buckets: set, concurrency: 1 });
    const c = contract(RES, contractBuckets);
    const request = compileDiffusers(c, planRun(c), { datasetDir: join(dir, "dataset"), outputDir: join(dir, "out"), basePath: join(dir, "tiny"), cacheDir: join(dir, "cache") }).request;
    expect(request.buckets).toEqual(set);
    const entries = manifest.entries.filter((e) => e.status === "prepared");
    const raw = entries.map((e) => join(dir, "dataset", e.source));
    const prepared = entries.map((e) => join(dir, "prepared", e.output!));
    const code = [
      "import json, sys",
      "from loraspec_worker.train.buckets import plan_entries",
      "buckets = json.loads(sys.argv[1])",
      "pick = lambda paths: [f\"{b['width']}x{b['height']}\" for _, b in plan_entries([(p, '') for p in paths], buckets)]",
      "print(json.dumps([pick(json.loads(sys.argv[2])), pick(json.loads(sys.argv[3]))]))",
    ].join("\n");
    const env = { ...process.env, PYTHONPATH: join(root, "worker"), OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
    const [fromRaw, fromPrepared] = JSON.parse(execFileSync(python, ["-c", code, JSON.stringify(request.buckets), JSON.stringify(raw), JSON.stringify(prepared)], { env, encoding: "utf8" })) as string[][];
    const prepChose = entries.map((e) => `${e.outputWidth}x${e.outputHeight}`);
    expect(Object.fromEntries(entries.map((e, k) => [e.source, fromRaw![k]]))).toEqual(Object.fromEntries(entries.map((e, k) => [e.source, prepChose[k]])));
    expect(fromPrepared).toEqual(prepChose);
  });
});
