import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents, type LoraspecEvent } from "@loraspec/core/events.js";
import { prepareDataset, type PrepSummary } from "@loraspec/engine/dataset/prepare-dataset.js";
import { readPrepManifest } from "@loraspec/engine/dataset/prep-manifest.js";
import { aspectBuckets } from "@loraspec/core/plan/buckets.js";
import { photoLike, pngHeaderOnly } from "./make-images.js";

const RES = 256;
let root: string;
let dataset: string;
let out: string;

async function run(extra: Partial<Parameters<typeof prepareDataset>[0]> = {}): Promise<{ events: LoraspecEvent[]; summary: PrepSummary }> {
  const events = await collectEvents(prepareDataset({ datasetDir: dataset, outDir: out, resolution: RES, background: "#00ff00", concurrency: 2, ...extra }));
  const done = events.find((e) => e.type === "done");
  return { events, summary: (done as unknown as { result: PrepSummary }).result };
}

async function hashTree(dir: string): Promise<Record<string, string>> {
  const outMap: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    if ((await stat(path)).isFile()) outMap[name] = createHash("sha256").update(await readFile(path)).digest("hex");
  }
  return outMap;
}

async function pixel(path: string, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-prep-"));
  dataset = join(root, "dataset");
  out = join(root, ".loraspec", "prepared");
  await import("node:fs/promises").then((fs) => fs.mkdir(dataset, { recursive: true }));
  const w = (name: string, data: Buffer | string) => writeFile(join(dataset, name), data);
  // Distinct photo-like images in several formats.
  await w("a.jpg", await photoLike(400, 300, 1).jpeg({ quality: 90 }).toBuffer());
  await w("b.png", await photoLike(300, 400, 2).png().toBuffer());
  await w("c.webp", await photoLike(360, 360, 3).webp().toBuffer());
  await w("d.tiff", await photoLike(320, 300, 4).tiff().toBuffer());
  // Animated GIF: the first frame is photo-like, the second solid blue; prep must take the first.
  const frames = [await photoLike(300, 300, 5).png().toBuffer(), await sharp({ create: { width: 300, height: 300, channels: 3, background: "#0000ff" } }).png().toBuffer()];
  await w("e.gif", await sharp(frames, { join: { animated: true } }).gif().toBuffer());
  await w("f.avif", await photoLike(300, 300, 6).avif().toBuffer());
  await w("g16.png", await photoLike(300, 300, 7).toColourspace("rgb16").png().toBuffer());
  await w("h-palette.png", await photoLike(300, 300, 8).png({ palette: true }).toBuffer());
  // An exact and a near duplicate of a.jpg.
  await w("a-copy.jpg", await readFile(join(dataset, "a.jpg")));
  await w("a-small.jpg", await photoLike(400, 300, 1).resize(360, 270).jpeg({ quality: 70 }).toBuffer());
  // Broken and hostile files.
  const good = await photoLike(600, 450, 9).jpeg().toBuffer();
  await w("truncated.jpg", good.subarray(0, Math.floor(good.length * 0.6)));
  await w("notes.jpg", "this is a text file with a .jpg name\n");
  await w("huge.png", pngHeaderOnly(30000, 30000));
  await w("tiny.png", await photoLike(64, 64, 10).png().toBuffer());
  await w("panorama.jpg", await photoLike(1200, 300, 11).jpeg().toBuffer());
  // CMYK JPEG.
  await w("cmyk.jpg", await photoLike(300, 300, 12).toColourspace("cmyk").jpeg().toBuffer());
  // EXIF-rotated: stored 400x300 with top half red and bottom half blue, orientation 6 (rotate 90 CW to display).
  const rb = Buffer.alloc(400 * 300 * 3);
  for (let y = 0; y < 300; y++) for (let x = 0; x < 400; x++) rb.set(y < 150 ? [230, 10, 10] : [10, 10, 230], (y * 400 + x) * 3);
  await w("rotated.jpg", await sharp(rb, { raw: { width: 400, height: 300, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toBuffer());
  // Transparent PNG: left half transparent, right half opaque white-ish noise-free grey.
  const rgba = Buffer.alloc(300 * 300 * 4);
  for (let y = 0; y < 300; y++) for (let x = 0; x < 300; x++) rgba.set(x < 150 ? [255, 0, 0, 0] : [40, 40, 40, 255], (y * 300 + x) * 4);
  await w("transparent.png", await sharp(rgba, { raw: { width: 300, height: 300, channels: 4 } }).png().toBuffer());
  // Sidecar captions and a stray file.
  await w("a.txt", "txcl, a photo of a, standing outdoors");
  await w("b.txt", "txcl, a photo of b, sitting indoors");
  await w("readme.md", "not an image");
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("prepareDataset", () => {
  let first: PrepSummary;
  let originals: Record<string, string>;

  it("prepares a hostile folder: every problem reported, none fatal, originals untouched", async () => {
    originals = await hashTree(dataset);
    const { events, summary } = await run();
    first = summary;
    expect(await hashTree(dataset)).toEqual(originals);
    const skipped = Object.fromEntries(summary.skipped.map((s) => [s.source, s.code]));
    expect(skipped).toEqual({
      "a-copy.jpg": "duplicate",
      "a-small.jpg": "near-duplicate",
      "truncated.jpg": "truncated",
      "notes.jpg": "not-an-image",
      "huge.png": "too-large",
      "tiny.png": "too-small",
      "panorama.jpg": "extreme-aspect",
    });
    expect(summary.processed).toEqual(["a.jpg", "b.png", "c.webp", "cmyk.jpg", "d.tiff", "e.gif", "f.avif", "g16.png", "h-palette.png", "rotated.jpg", "transparent.png"]);
    expect(summary.otherFiles).toEqual(["readme.md"]);
    expect(summary.duplicates).toEqual([expect.objectContaining({ kind: "near", keep: "a.jpg", drop: expect.arrayContaining(["a-copy.jpg", "a-small.jpg"]) })]);
    // Every problem is a warning naming its file.
    const warned = new Set(events.filter((e) => e.type === "warning").map((e) => (e as { file?: string }).file));
    for (const source of ["truncated.jpg", "notes.jpg", "huge.png", "tiny.png", "panorama.jpg", "a.jpg"]) expect(warned).toContain(source);
    expect(events.some((e) => e.type === "progress" && e.task === "prep" && e.current === e.total)).toBe(true);
  });

  it("writes sRGB 8-bit images at the training resolution", async () => {
    for (const name of ["a.png", "b.png", "c.png", "cmyk.png", "d.png", "e.png", "f.png", "g16.png", "h-palette.png", "rotated.png", "transparent.png"]) {
      const meta = await sharp(join(out, name)).metadata();
      expect([name, meta.width, meta.height, meta.space, meta.depth, meta.hasAlpha]).toEqual([name, RES, RES, "srgb", "uchar", false]);
    }
  });

  it("applies EXIF orientation, flattens alpha onto the chosen background, takes a GIF's first frame", async () => {
    // Displayed upright, the red top half ends up on the right and the blue half on the left.
    const left = await pixel(join(out, "rotated.png"), 10, 128);
    const right = await pixel(join(out, "rotated.png"), 245, 128);
    expect(left[2]).toBeGreaterThan(180);
    expect(right[0]).toBeGreaterThan(180);
    expect(await pixel(join(out, "transparent.png"), 10, 128)).toEqual([0, 255, 0]);
    const gif = await sharp(join(out, "e.png")).stats();
    expect(gif.channels[2]!.mean).toBeLessThan(200);
    expect(gif.channels[0]!.stdev).toBeGreaterThan(10);
    expect(await pixel(join(out, "transparent.png"), 245, 128)).toEqual([40, 40, 40]);
  });

  it("records source, hash, crop box, output and caption in the manifest, and copies sidecars", async () => {
    const manifest = await readPrepManifest({ path: join(out, "manifest.json") });
    const a = manifest!.entries.find((e) => e.source === "a.jpg")!;
    expect(a).toMatchObject({ status: "prepared", output: "a.png", caption: "a.txt", crop: { left: 50, top: 0, width: 300, height: 300 } });
    expect(a.sha256).toBe(createHash("sha256").update(await readFile(join(dataset, "a.jpg"))).digest("hex"));
    expect(manifest!.entries.find((e) => e.source === "a-copy.jpg")).toMatchObject({ status: "duplicate", duplicateOf: "a.jpg" });
    expect(await readFile(join(out, "a.txt"), "utf8")).toBe("txcl, a photo of a, standing outdoors");
    expect(first.captionsCopied).toBe(2);
  });

  it("re-runs incrementally: deleting one source and editing another changes exactly those outputs", async () => {
    // Hand-written captions in the prepared folder, one per image, naming the image.
    for (const name of ["c", "d", "e", "f"]) await writeFile(join(out, `${name}.txt`), `txcl, caption of ${name}`);
    const again = await run();
    expect(again.summary.processed).toEqual([]);
    expect(again.summary.unchanged).toBe(11);
    const before = await hashTree(out);

    await unlink(join(dataset, "c.webp"));
    await writeFile(join(dataset, "d.tiff"), await photoLike(320, 300, 99).tiff().toBuffer());
    const third = await run();
    expect(third.summary.processed).toEqual(["d.tiff"]);
    expect(third.summary.removed).toEqual(["c.webp"]);
    const after = await hashTree(out);
    const changed = Object.keys({ ...before, ...after }).filter((k) => before[k] !== after[k] && k !== "manifest.json").sort();
    expect(changed).toEqual(["c.png", "c.txt", "d.png", "d.txt"]);
    // Captions stay with their image by identity, not position.
    for (const name of ["e", "f"]) expect(await readFile(join(out, `${name}.txt`), "utf8")).toBe(`txcl, caption of ${name}`);
    // The removed image's hand-written caption is parked, not lost; so is the one written for d's old pixels, with a warning.
    expect(await readFile(join(out, ".removed", "c.txt"), "utf8")).toBe("txcl, caption of c");
    expect(await readFile(join(out, ".removed", "d.txt"), "utf8")).toBe("txcl, caption of d");
    expect(third.summary.staleCaptions).toEqual([{ source: "d.tiff", parked: join(".removed", "d.txt") }]);
    expect(third.events.filter((e) => e.type === "warning" && e.code === "caption-stale").map((e) => (e as { file?: string }).file)).toEqual(["d.tiff"]);
  });

  it("makes a former near duplicate once the images it duplicated are gone", async () => {
    await unlink(join(dataset, "a.jpg"));
    await unlink(join(dataset, "a-copy.jpg"));
    const { summary } = await run();
    expect(summary.processed).toEqual(["a-small.jpg"]);
    expect(summary.duplicates).toEqual([]);
    expect(summary.removed).toEqual(["a.jpg"]);
    expect((await sharp(join(out, "a-small.png")).metadata()).width).toBe(RES);
    await writeFile(join(dataset, "a.jpg"), await photoLike(400, 300, 1).jpeg({ quality: 90 }).toBuffer());
    await writeFile(join(dataset, "a-copy.jpg"), await readFile(join(dataset, "a.jpg")));
  });

  it("pins a duplicate and uses aspect buckets and attention crops when asked", async () => {
    const bucketOut = join(root, "buckets");
    // Core's default set at 256 is the square alone (min side 256), so the set is given, as a contract would.
    // Step 32: with step 64, a-small's 4:3 is exactly between 1:1 and 320x192's 5:3 and the tie goes to the square.
    const buckets = aspectBuckets({ min_side: 128, max_side: 512, step: 32 }, RES).buckets;
    const events = await collectEvents(
      prepareDataset({ datasetDir: dataset, outDir: bucketOut, resolution: RES, aspect: "buckets", buckets, crop: "attention", format: "jpeg", pinned: ["a-small.jpg"], concurrency: 2 }),
    );
    const summary = (events.find((e) => e.type === "done") as unknown as { result: PrepSummary }).result;
    expect(summary.duplicates[0]).toMatchObject({ keep: "a-small.jpg" });
    const a = await sharp(join(bucketOut, "a-small.jpg")).metadata();
    const b = await sharp(join(bucketOut, "b.jpg")).metadata();
    expect(a.width! / a.height!).toBeGreaterThan(1.2);
    expect(b.height! / b.width!).toBeGreaterThan(1.2);
    expect([a.width! % 32, a.height! % 32]).toEqual([0, 0]);
  });

  it("crops to the contract's bucket set when given (core's plan/buckets.ts, what the trainers get)", async () => {
    const { makeBuckets } = await import("@loraspec/core/plan/buckets.js");
    const set = makeBuckets(RES, 128, 512, 32);
    const bucketOut = join(root, "core-buckets");
    await collectEvents(prepareDataset({ datasetDir: dataset, outDir: bucketOut, resolution: RES, aspect: "buckets", buckets: set, format: "jpeg", pinned: ["a-small.jpg"], concurrency: 2 }));
    const sizes = set.map((b) => `${b.width}x${b.height}`);
    for (const name of ["a-small.jpg", "b.jpg"]) {
      const m = await sharp(join(bucketOut, name)).metadata();
      expect(sizes).toContain(`${m.width}x${m.height}`);
    }
    const manifest = await readPrepManifest({ path: join(bucketOut, "manifest.json") });
    expect(manifest?.settings.buckets).toEqual(sizes);
  });

  it("refuses aspect buckets below the default shortest side with no set given, naming the resolution (no contract field)", async () => {
    const err = await collectEvents(prepareDataset({ datasetDir: dataset, outDir: join(root, "o-small"), resolution: 128, aspect: "buckets" })).catch((e) => e);
    expect(err).toMatchObject({ code: "E_USAGE" });
    expect(err.message).toContain("128");
    expect(err.message).not.toContain("dataset.buckets.min_side (");
    // a set given (the contract's) is taken as it is: no default-side refusal
    const set = aspectBuckets({ min_side: 64, max_side: 256, step: 64 }, 128).buckets;
    await expect(collectEvents(prepareDataset({ datasetDir: dataset, outDir: join(root, "o-small2"), resolution: 128, aspect: "buckets", buckets: set, concurrency: 1 }))).resolves.toBeDefined();
  });

  it("refuses to write into the dataset folder and reports an empty one", async () => {
    await expect(collectEvents(prepareDataset({ datasetDir: dataset, outDir: dataset, resolution: RES }))).rejects.toMatchObject({ code: "E_USAGE" });
    const empty = join(root, "empty");
    await import("node:fs/promises").then((fs) => fs.mkdir(empty));
    await expect(collectEvents(prepareDataset({ datasetDir: empty, outDir: join(root, "o2"), resolution: RES }))).rejects.toMatchObject({ code: "E_DATASET_EMPTY" });
    await expect(collectEvents(prepareDataset({ datasetDir: join(root, "nope"), outDir: join(root, "o3"), resolution: RES }))).rejects.toMatchObject({ code: "E_DATASET_NOT_FOUND" });
  });
});
