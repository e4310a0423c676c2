import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { prepareDataset, type PrepareDatasetParams, type PrepSummary } from "@loraspec/engine/dataset/prepare-dataset.js";
import { photoLike } from "./make-images.js";

/**
 * A prep run that ends in an error leaves the prepared folder, its captions and manifest exactly as
 * they were (prep-commit.ts): bad settings, nothing usable, a cancel, an exception mid-run.
 */
const RES = 128;
let root: string;
let dataset: string;
let out: string;

/** Every file and folder under `dir` (hidden ones and `.removed/` included) with its bytes' hash. */
async function tree(dir: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  async function walk(rel: string): Promise<void> {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const path = join(rel, name);
      if ((await stat(join(dir, path))).isDirectory()) {
        found[`${path}/`] = "dir";
        await walk(path);
      } else found[path] = createHash("sha256").update(await readFile(join(dir, path))).digest("hex");
    }
  }
  await walk("");
  return found;
}

function prep(extra: Partial<PrepareDatasetParams> = {}) {
  return collectEvents(prepareDataset({ datasetDir: dataset, outDir: out, resolution: RES, concurrency: 2, ...extra }));
}

async function failure(extra: Partial<PrepareDatasetParams>): Promise<{ code: string; field?: string; message: string }> {
  try {
    await prep(extra);
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    return { code: error.code, field: error.field, message: error.message };
  }
  throw new Error("prep did not fail");
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-prep-tx-"));
  dataset = join(root, "photos");
  out = join(root, ".loraspec", "prepared");
  await mkdir(dataset, { recursive: true });
  await photoLike(300, 240, 1).jpeg({ quality: 92 }).toFile(join(dataset, "alpha.jpg"));
  await photoLike(300, 240, 1).resize(270, 216).jpeg({ quality: 70 }).toFile(join(dataset, "alpha-small.jpg"));
  await photoLike(260, 260, 2).png().toFile(join(dataset, "beta.png"));
  await photoLike(280, 200, 3).png().toFile(join(dataset, "gamma.png"));
  await writeFile(join(dataset, "beta.txt"), "txcl, beta from the dataset");
  await prep();
  // A hand-written caption in the prepared folder, and one that came from a sidecar.
  await writeFile(join(out, "alpha.txt"), "txcl, a caption");
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("a prep run that fails leaves the prepared folder as it was", () => {
  it.each<[string, Partial<PrepareDatasetParams>, string]>([
    ["a colour sharp cannot parse", { background: "notacolor" }, "background"],
    ["a short hex colour", { background: "#12345" }, "background"],
    ["an empty colour", { background: "" }, "background"],
    ["a pixel limit below one training-size image", { maxPixels: 1 }, "maxPixels"],
    ["a fractional pixel limit", { maxPixels: 1e6 + 0.5 }, "maxPixels"],
    ["resolution 0", { resolution: 0 }, "resolution"],
    ["a resolution past sharp's limit", { resolution: 20000 }, "resolution"],
    ["concurrency 0", { concurrency: 0 }, "concurrency"],
    ["a near threshold past the largest pixel distance", { nearDuplicate: { pixelAtZero: 500 } }, "nearDuplicate.pixelAtZero"],
    ["a format prep cannot write", { format: "gif" as "png" }, "format"],
    ["an unknown crop", { crop: "left" as "center" }, "crop"],
  ])("%s: E_USAGE naming the setting, nothing touched", async (_name, extra, field) => {
    const before = await tree(out);
    const error = await failure(extra);
    expect(error).toMatchObject({ code: "E_USAGE", field });
    expect(error.message).toContain(field);
    expect(await tree(out)).toEqual(before);
  });

  it("every image unreadable: E_DATASET_EMPTY, outputs, captions and manifest untouched (nothing parked in .removed/)", async () => {
    const before = await tree(out);
    const saved = new Map<string, Buffer>();
    for (const name of ["alpha.jpg", "alpha-small.jpg", "beta.png", "gamma.png"]) {
      saved.set(name, await readFile(join(dataset, name)));
      await writeFile(join(dataset, name), "not an image any more");
    }
    try {
      expect(await failure({})).toMatchObject({ code: "E_DATASET_EMPTY" });
      expect(await tree(out)).toEqual(before);
      expect(before).not.toHaveProperty([".removed/"]);
    } finally {
      for (const [name, bytes] of saved) await writeFile(join(dataset, name), bytes);
    }
  });

  it("an exception mid-run (the embedder throws after every output was decoded anew): rethrown, nothing touched", async () => {
    const before = await tree(out);
    // JPEG outputs: every image is decoded again (into staging) before dedupe asks the embedder.
    const boom = async () => {
      throw new Error("embedder exploded");
    };
    await expect(prep({ format: "jpeg", embed: boom })).rejects.toThrow("embedder exploded");
    expect(await tree(out)).toEqual(before);
  });

  it("a cancel in the middle of decoding: E_CANCELLED, nothing touched", async () => {
    const before = await tree(out);
    const controller = new AbortController();
    const events = prepareDataset({ datasetDir: dataset, outDir: out, resolution: RES, concurrency: 1, format: "jpeg", signal: controller.signal });
    await expect(
      (async () => {
        for await (const event of events) {
          // After the first image is written into staging.
          if (event.type === "progress" && (event as { task?: string }).task === "prep") controller.abort();
        }
      })(),
    ).rejects.toMatchObject({ code: "E_CANCELLED" });
    expect(await tree(out)).toEqual(before);
  });

  it("a first prep that fails creates no prepared folder (nor .loraspec/)", async () => {
    const fresh = join(root, "fresh", ".loraspec", "prepared");
    await expect(collectEvents(prepareDataset({ datasetDir: dataset, outDir: fresh, resolution: RES, background: "nope" }))).rejects.toMatchObject({ code: "E_USAGE" });
    // A failure after the staging folder was made (every image unreadable is simplest: a folder of one bad file).
    const bad = join(root, "bad");
    await mkdir(bad);
    await writeFile(join(bad, "x.png"), "not a png");
    await expect(collectEvents(prepareDataset({ datasetDir: bad, outDir: fresh, resolution: RES }))).rejects.toMatchObject({ code: "E_DATASET_EMPTY" });
    await expect(stat(join(root, "fresh"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("the run after the failures changes only what it should: the hand caption stays, nothing parked", async () => {
    const events = await prep();
    const summary = (events.find((e) => e.type === "done") as unknown as { result: PrepSummary }).result;
    expect(await readFile(join(out, "alpha.txt"), "utf8")).toBe("txcl, a caption");
    expect(summary.staleCaptions).toEqual([]);
    const names = Object.keys(await tree(out));
    expect(names.filter((n) => n.startsWith(".removed") || n.startsWith(".prep-staging"))).toEqual([]);
  });
});
