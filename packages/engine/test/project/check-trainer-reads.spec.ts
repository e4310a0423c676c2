import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkProject, type CheckResult } from "@loraspec/engine/project/check-project.js";
import { prepareDataset } from "@loraspec/engine/dataset/prepare-dataset.js";
import { trainingDatasetDir } from "@loraspec/engine/dataset/project-dataset.js";
import { findWorkerRoot, workerPython } from "@loraspec/engine/worker/worker-paths.js";
import { photoLike, photoLikeRaw } from "../dataset/make-images.js";

const photoRaw = (seed: number) => photoLikeRaw(256, 256, seed + 500);

/**
 * "What check passes, train starts", as a table over trainer x dataset shape: check's verdict (its dataset errors)
 * and its count (what the plan counts) are what that trainer would read of the folder the run hands it
 * (core knowledge/trainer-folder-reading.ts; project/trainer-view.ts). For the built-in trainer the count is also
 * the real worker's: read_dataset on the folder the run trains on, and image_size (its pixel limit) on each image.
 */
const N = 16; // above the character target's minimum of 15
const TRAINERS = {
  diffusers: "base:\n  model: sdxl\ntrainer:\n  name: diffusers\nhardware:\n  kind: local\n",
  kohya: "base:\n  model: sdxl\ntrainer:\n  name: kohya\n  version: v0.10.1\nhardware:\n  kind: local\n",
  "ai-toolkit": "base:\n  model: sdxl\ntrainer:\n  name: ai-toolkit\n  version: 0.12.26\nhardware:\n  kind: local\n",
  fal: "base:\n  model: flux2-dev\ntrainer:\n  name: fal\n  endpoint: fal-ai/flux-2-trainer\nhardware:\n  kind: fal\n",
} as const;
type Trainer = keyof typeof TRAINERS;

const contract = (trainer: Trainer) =>
  `version: 1\nname: t-${trainer}\n${TRAINERS[trainer]}target: character\ndataset:\n  path: ./dataset\n  resolution: 256\n  aspect: square\ncaptions:\n  style: natural\n  source: manual\ntrigger:\n  word: txcl\nhyperparameters:\n  learning_rate: 1.0e-4\n  steps: 1600\n  save_every: 400\nfailure:\n  on_divergence: stop\n  on_oom: fail\n`;

/** Each shape: how to build its project, and per trainer the dataset errors check gives and the images it counts. */
interface Shape {
  build: (project: string) => Promise<void>;
  expect: Record<Trainer, { errors: string[]; count: number }>;
  /** Warnings every trainer's check gives. */
  warnings?: string[];
}
const all = (errors: string[], count: number) => ({ diffusers: { errors, count }, kohya: { errors, count }, "ai-toolkit": { errors, count }, fal: { errors, count } });
const UNREAD = "dataset-not-prepared-unread";
const CANNOT_OPEN = "dataset-not-prepared-unreadable";

const SHAPES: Record<string, Shape> = {
  flat: { build: (p) => images(p, "", N), expect: all([], N) },
  "sub-folder (10_txcl/)": {
    build: (p) => images(p, "10_txcl/", N),
    // Kohya globs image_dir itself, the built-in trainer lists it; ai-toolkit walks it; fal's ZIP flattens it.
    expect: { diffusers: { errors: [UNREAD, "dataset-below-minimum"], count: 0 }, kohya: { errors: [UNREAD, "dataset-below-minimum"], count: 0 }, "ai-toolkit": { errors: [], count: N }, fal: { errors: [], count: N } },
  },
  "prepared, fresh": { build: async (p) => (await images(p, "10_txcl/", N), await prep(p)), expect: all([], N) },
  "prepared, stale": {
    build: async (p) => {
      await images(p, "", N);
      await prep(p);
      await unlink(join(p, "dataset", "img05.png"));
      await images(p, "", 2, "new", 100);
    },
    // The run would train on the prepared folder's N images (one of them deleted since): check errs and counts those.
    expect: all(["dataset-prepared-stale"], N),
  },
  "one image of 225 Mpx": {
    build: async (p) => {
      await images(p, "", N);
      await sharp({ create: { width: 15000, height: 15000, channels: 3, background: "#808080" } }).jpeg({ quality: 50 }).toFile(join(p, "dataset", "huge.jpg"));
    },
    // Over Pillow's default (178,956,970 px), under loraspec's (268,402,689): the built-in trainer is told loraspec's.
    expect: { diffusers: { errors: [], count: N + 1 }, kohya: { errors: [CANNOT_OPEN], count: N + 1 }, "ai-toolkit": { errors: [CANNOT_OPEN], count: N + 1 }, fal: { errors: [], count: N + 1 } },
  },
  "one image of 400 Mpx": {
    build: async (p) => (await images(p, "", N), await writeFile(join(p, "dataset", "bomb.jpg"), headerOnlyJpeg(20000, 20000))),
    // Over every known limit: prep leaves it out; handed as it is it stops every local trainer (fal's limit is not known).
    expect: { diffusers: { errors: [CANNOT_OPEN], count: N }, kohya: { errors: [CANNOT_OPEN], count: N }, "ai-toolkit": { errors: [CANNOT_OPEN], count: N }, fal: { errors: [], count: N } },
  },
  "animated GIF": {
    build: async (p) => (await images(p, "", N), await animatedGif(join(p, "dataset", "anim.gif"))),
    // Neither the built-in trainer, Kohya nor ai-toolkit reads .gif; fal gets it in the ZIP.
    expect: { diffusers: { errors: [], count: N }, kohya: { errors: [], count: N }, "ai-toolkit": { errors: [], count: N }, fal: { errors: [], count: N + 1 } },
    warnings: ["dataset-animated"],
  },
};

let root: string;
const results = new Map<string, Map<Trainer, CheckResult>>();
const workerRoot = findWorkerRoot();
const python = workerPython(workerRoot);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-trainer-reads-"));
  for (const [name, shape] of Object.entries(SHAPES)) {
    const project = join(root, name.replace(/[^a-z0-9]+/gi, "-"));
    await mkdir(join(project, "dataset"), { recursive: true });
    await shape.build(project);
    const byTrainer = new Map<Trainer, CheckResult>();
    for (const trainer of Object.keys(TRAINERS) as Trainer[]) {
      await writeFile(join(project, `${trainer}.yaml`), contract(trainer));
      byTrainer.set(trainer, await checkProject({ path: `${trainer}.yaml`, cwd: project, env: {} }));
    }
    results.set(name, byTrainer);
  }
}, 240_000);
afterAll(() => rm(root, { recursive: true, force: true }));

const DATASET_RULE = /^dataset-/;

describe.each(Object.keys(SHAPES))("check on a %s dataset", (shape) => {
  it.each(Object.keys(TRAINERS) as Trainer[])("%s: the verdict and the count are what that trainer reads", (trainer) => {
    const r = results.get(shape)!.get(trainer)!;
    const want = SHAPES[shape]!.expect[trainer];
    const errors = r.findings.filter((f) => f.severity === "error" && DATASET_RULE.test(f.rule)).map((f) => f.rule);
    expect(errors.sort()).toEqual([...want.errors].sort());
    expect(r.dataset?.images.length).toBe(want.count);
    if (want.count > 0) expect(r.plan.images).toEqual({ count: want.count, source: "scan" });
    for (const rule of SHAPES[shape]!.warnings ?? []) expect(r.findings.find((f) => f.rule === rule)?.severity).toBe("warning");
    // Too few read: the count's message says why (the trainer's reading), not that prep leaves them out.
    const below = r.findings.find((f) => f.rule === "dataset-below-minimum");
    if (below) expect(below.message).toContain(`the trainer never reads ${N - want.count} more`);
  });

  it.skipIf(!existsSync(python))("the built-in trainer's worker reads what check counted, or stops where check erred", async () => {
    const r = results.get(shape)!.get("diffusers")!;
    const project = dirname(r.loaded.file);
    const trainsOn = await trainingDatasetDir(project, join(project, "dataset"));
    const got = workerReads(trainsOn.dir);
    const errors = r.findings.filter((f) => f.severity === "error" && DATASET_RULE.test(f.rule) && f.rule !== "dataset-prepared-stale");
    // A stale prepared folder still opens: the error is that it is not the dataset check counted.
    if (errors.length) expect(got).toHaveProperty("error");
    else expect(got).toEqual({ count: r.dataset!.images.length });
  });
});

/** What the worker makes of a folder: read_dataset, then each image opened as bucketing opens it (header, pixel limit). */
function workerReads(dir: string): { count: number } | { error: string } {
  const code = [
    "import json, sys",
    "from loraspec_worker.protocol import WorkerError",
    "from loraspec_worker.train.data import read_dataset",
    "from loraspec_worker.train.buckets import image_size",
    "try:",
    "    items = read_dataset(sys.argv[1], None)",
    "    for path, _ in items: image_size(path)",
    "    print(json.dumps({'count': len(items)}))",
    "except WorkerError as e:",
    "    print(json.dumps({'error': e.code}))",
  ].join("\n");
  const env = { ...process.env, PYTHONPATH: join(workerRoot, "worker"), OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
  return JSON.parse(execFileSync(python, ["-c", code, dir], { env, encoding: "utf8" }).trim().split("\n").pop()!) as { count: number } | { error: string };
}

async function images(project: string, sub: string, count: number, stem = "img", seed = 0): Promise<void> {
  await mkdir(join(project, "dataset", sub), { recursive: true });
  for (let i = 0; i < count; i++) {
    const name = `${stem}${String(i).padStart(2, "0")}`;
    await photoLike(256, 256, seed + i + 1).png().toFile(join(project, "dataset", sub, `${name}.png`));
    await writeFile(join(project, "dataset", sub, `${name}.txt`), `txcl, a photo number ${seed + i}`);
  }
}

async function prep(project: string): Promise<void> {
  const gen = prepareDataset({ datasetDir: join(project, "dataset"), outDir: join(project, ".loraspec", "prepared"), resolution: 256, aspect: "square", crop: "center", concurrency: 1 });
  for (let next = await gen.next(); !next.done; next = await gen.next());
}

/** A baseline JPEG header claiming width x height, with no scan data: its size is read from the header alone. */
function headerOnlyJpeg(width: number, height: number): Buffer {
  const seg = (marker: number, data: Buffer) => Buffer.concat([Buffer.from([0xff, marker, (data.length + 2) >> 8, (data.length + 2) & 0xff]), data]);
  const sof = Buffer.from([8, height >> 8, height & 0xff, width >> 8, width & 0xff, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);
  const sos = Buffer.from([3, 1, 0, 2, 0, 3, 0, 0, 0x3f, 0]);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), seg(0xc0, sof), seg(0xda, sos), Buffer.from([0xff, 0xd9])]);
}

/** A two-frame animated GIF (sharp writes the frames of a raw strip with pageHeight). */
async function animatedGif(path: string): Promise<void> {
  const frames = Buffer.concat([photoRaw(1), photoRaw(2)]);
  await sharp(frames, { raw: { width: 256, height: 512, channels: 3, pageHeight: 256 } }).gif({ loop: 0, delay: [100, 100] }).toFile(path);
  expect((await sharp(path).metadata()).pages).toBe(2);
}

describe("the regularisation folder (never prepared: every trainer gets it as it is)", () => {
  const REG: Record<Trainer, { unreadable: boolean; count: number }> = {
    diffusers: { unreadable: true, count: 0 },
    kohya: { unreadable: true, count: 0 },
    "ai-toolkit": { unreadable: false, count: 6 },
    fal: { unreadable: false, count: 6 },
  };
  let project: string;
  const got = new Map<Trainer, CheckResult>();
  beforeAll(async () => {
    project = join(root, "reg-sub-folder");
    await images(project, "", N);
    await mkdir(join(project, "reg", "1_person"), { recursive: true });
    for (let i = 0; i < 6; i++) await photoLike(256, 256, 900 + i).png().toFile(join(project, "reg", "1_person", `r${i}.png`));
    for (const trainer of Object.keys(TRAINERS) as Trainer[]) {
      await writeFile(join(project, `${trainer}.yaml`), contract(trainer).replace("  path: ./dataset\n", "  path: ./dataset\n  reg_path: ./reg\n"));
      got.set(trainer, await checkProject({ path: `${trainer}.yaml`, cwd: project, env: {} }));
    }
  }, 120_000);

  it.each(Object.keys(TRAINERS) as Trainer[])("%s: images in a sub-folder of reg_path count only where the trainer reads them", (trainer) => {
    const r = got.get(trainer)!;
    expect(r.findings.some((f) => f.rule === "reg-images-unreadable" && f.severity === "error")).toBe(REG[trainer].unreadable);
    expect(r.regDataset?.images.length).toBe(REG[trainer].count);
  });

  it.skipIf(!existsSync(python))("the built-in trainer's worker finds no regularisation image there either", () => {
    expect(workerReads(join(project, "reg"))).toEqual({ error: "E_DATASET_EMPTY" });
  });
});
