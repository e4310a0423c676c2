import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUILTIN_TRAINER } from "@loraspec/core/knowledge/builtin-trainer.js";
import { FLATTEN_BACKGROUND } from "@loraspec/core/knowledge/image-formats.js";
import { prepareDataset } from "@loraspec/engine/dataset/prepare-dataset.js";
import { MANIFEST_FILE, ManifestSchema } from "@loraspec/engine/dataset/prep-manifest.js";
import { findWorkerRoot, workerPython } from "@loraspec/engine/worker/worker-paths.js";

/**
 * Transparent pixels have one colour wherever an image becomes training pixels (knowledge/image-formats.ts
 * FLATTEN_BACKGROUND): the built-in trainer reading a dataset prep never touched sees what prep would
 * have written. The image stores black under its transparent half (what PIL's convert("RGB") alone
 * kept before 2026-12-02) and a half-transparent band; the worker's pixels of the raw file must equal
 * prep's output within rounding.
 */
const root = findWorkerRoot();
const python = workerPython(root);
const haveWorker = existsSync(python);
const SIZE = 64;

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loraspec-flatten-"));
  mkdirSync(join(dir, "dataset"));
  const raw = Buffer.alloc(SIZE * SIZE * 4);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const o = (y * SIZE + x) * 4;
      // left half: transparent over stored black; a band of red at alpha 128; the rest opaque blue
      const [r, g, b, a] = x < SIZE / 2 ? [0, 0, 0, 0] : y < 16 ? [255, 0, 0, 128] : [20, 40, 200, 255];
      raw.set([r, g, b, a], o);
    }
  }
  await sharp(raw, { raw: { width: SIZE, height: SIZE, channels: 4 } }).png().toFile(join(dir, "dataset", "cutout.png"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("transparent pixels: one background colour for prep and the built-in trainer", () => {
  it("is core's, in the table the worker loads", () => {
    expect(BUILTIN_TRAINER.flattenBackground).toBe(FLATTEN_BACKGROUND.value);
    const table = JSON.parse(readFileSync(join(root, "schema", "builtin-trainer.json"), "utf8")) as { flattenBackground: string };
    expect(table.flattenBackground).toBe(FLATTEN_BACKGROUND.value);
  });

  it.skipIf(!haveWorker)("the worker's pixels of the raw cut-out equal prep's output within rounding", async () => {
    const out = join(dir, "prepared");
    const gen = prepareDataset({ datasetDir: join(dir, "dataset"), outDir: out, resolution: SIZE, aspect: "square", crop: "center", concurrency: 1 });
    for (let next = await gen.next(); !next.done; next = await gen.next());
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(out, MANIFEST_FILE), "utf8")));
    const prepared = join(out, manifest.entries.find((e) => e.status === "prepared")!.output!);
    const code = [
      "import json, sys, numpy as np, torch",
      "torch.set_num_threads(1)",
      "from PIL import Image",
      "from loraspec_worker.train.buckets import load_to_bucket",
      "raw, prepared, size = sys.argv[1], sys.argv[2], int(sys.argv[3])",
      "pixels, _, _ = load_to_bucket(raw, {'resolution': size, 'width': size, 'height': size})",
      "got = (pixels.permute(1, 2, 0).numpy() + 1.0) * 127.5",
      "ref = np.asarray(Image.open(prepared).convert('RGB'), dtype=np.float32)",
      "print(json.dumps({'max': float(np.abs(got - ref).max()), 'left': got[:, : size // 2].mean(axis=(0, 1)).round().tolist()}))",
    ].join("\n");
    const env = { ...process.env, PYTHONPATH: join(root, "worker"), OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
    const got = JSON.parse(execFileSync(python, ["-c", code, join(dir, "dataset", "cutout.png"), prepared, String(SIZE)], { env, encoding: "utf8" })) as { max: number; left: number[] };
    expect(got.left).toEqual([255, 255, 255]); // the transparent half is the background, not the stored black
    expect(got.max).toBeLessThanOrEqual(2); // sharp's and PIL's alpha blending round differently by a level or so
  });
});
