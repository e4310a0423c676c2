import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { prepareDataset, type PrepSummary } from "@loraspec/engine/dataset/prepare-dataset.js";
import { scanDataset } from "@loraspec/engine/dataset/scan-dataset.js";
import { datasetFindings } from "@loraspec/engine/dataset/dataset-findings.js";
import { photoLike, pngHeaderOnly } from "./make-images.js";

// The folder a new user brings: every kind of bad input next to good photos.
let tmp: string;
let ds: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-messy-"));
  ds = join(tmp, "photos");
  await mkdir(join(ds, "sub"), { recursive: true });
  const w = (name: string, data: Buffer | string) => writeFile(join(ds, name), data);
  const good = await photoLike(300, 300, 1).jpeg({ quality: 92 }).toBuffer();
  await w("good.jpg", good);
  await w("good-copy.jpg", good);
  await w("good-q50.jpg", await sharp(good).jpeg({ quality: 50 }).toBuffer());
  await w("other.png", await photoLike(300, 300, 2).png().toBuffer());
  await w("cmyk.jpg", await photoLike(300, 300, 3).toColourspace("cmyk").jpeg().toBuffer());
  await w("deep.png", await photoLike(300, 300, 4).toColourspace("rgb16").png().toBuffer());
  await w("palette.png", await photoLike(300, 300, 5).png({ palette: true }).toBuffer());
  await w("alpha.png", await sharp({ create: { width: 300, height: 300, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer());
  await w("rotated.jpg", await photoLike(300, 320, 6).jpeg().withMetadata({ orientation: 6 }).toBuffer());
  await w("corrupt.jpg", "this is not a jpeg");
  await w("truncated.jpg", (await photoLike(300, 300, 7).jpeg().toBuffer()).subarray(0, 3000));
  await w("empty.png", Buffer.alloc(0));
  await w("tiny.png", await photoLike(40, 40, 8).png().toBuffer());
  await w("panorama.png", await photoLike(1200, 200, 9).png().toBuffer());
  await w("bomb.png", pngHeaderOnly(30000, 30000));
  await w("good.txt", "txcl outdoors\n");
  await w("orphan.txt", "a caption for nothing\n");
  await w("sub/nested.jpg", await photoLike(300, 300, 10).jpeg().toBuffer());
  await symlink(join(ds, "other.png"), join(ds, "link.png"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

// Permission faults are injected: tests run as root, who can read anything.
const denied = (path: string) => Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: "EACCES" });
const faults = {
  readdir: (async (dir: string, opts: never) => {
    if (dir.endsWith("sub")) throw denied(dir);
    return (await import("node:fs/promises")).readdir(dir, opts);
  }) as never,
  readFile: async (path: string) => {
    if (path.endsWith("palette.png")) throw denied(path);
    return (await import("node:fs/promises")).readFile(path);
  },
};

describe("a messy folder", () => {
  it("check's scan names every bad input with its reason and keeps going", async () => {
    const scan = await scanDataset({ dir: ds, resolution: 256, ...faults });
    const skipped = Object.fromEntries(scan.skipped.map((s) => [s.file, s.code]));
    expect(skipped).toEqual({
      "bomb.png": "too-large",
      "corrupt.jpg": "not-an-image",
      "empty.png": "unreadable",
      "link.png": "symlink",
      "palette.png": "unreadable",
      "panorama.png": "extreme-aspect",
      sub: "unreadable-folder",
      "tiny.png": "too-small",
      "truncated.jpg": "truncated",
    });
    const reason = Object.fromEntries(scan.skipped.map((s) => [s.file, s.message]));
    expect(reason["empty.png"]).toMatch(/empty/);
    expect(reason["palette.png"]).toMatch(/permission denied/);
    expect(scan.orphanCaptions).toEqual(["orphan.txt"]);
    expect(scan.duplicates.map((c) => [c.keep, c.drop])).toEqual([["good.jpg", ["good-copy.jpg", "good-q50.jpg"]]]);
    // What trains: the good, CMYK, 16-bit, transparent, rotated and other images; each duplicate cluster once.
    expect(scan.images.map((i) => i.file).sort()).toEqual(["alpha.png", "cmyk.jpg", "deep.png", "good.jpg", "other.png", "rotated.jpg"]);
    expect(scan.images.find((i) => i.file === "rotated.jpg")).toMatchObject({ width: 320, height: 300 });
    const rules = datasetFindings(scan).map((f) => f.rule);
    expect(rules).toEqual(["dataset-skipped", "dataset-duplicates", "dataset-orphan-captions"]);
  });

  it("prep skips the same files once each, reports orphans and symlinks, and keeps the same images", async () => {
    const events = await collectEvents(prepareDataset({ datasetDir: ds, outDir: join(tmp, "prep1"), resolution: 256, concurrency: 2 }));
    const done = events.find((e) => e.type === "done");
    const s = (done?.type === "done" ? done.result : undefined) as unknown as PrepSummary;
    expect(events.some((e) => e.type === "warning" && e.code === "orphan-caption")).toBe(true);
    const skipped = s.skipped.map((k) => k.source);
    expect(new Set(skipped).size).toBe(skipped.length);
    expect(s.warnings.map((k) => k.source)).not.toContain("panorama.png");
    expect(skipped).toEqual(expect.arrayContaining(["link.png", "panorama.png", "empty.png", "truncated.jpg", "good-copy.jpg", "good-q50.jpg"]));
    expect(s.orphanCaptions).toEqual(["orphan.txt"]);
    expect(s.outputs).toBe(8); // the six check keeps, plus palette.png and sub/nested.jpg (no fault injected here)
  });

  it("prep with a file as the dataset path is E_DATASET_NOT_FOUND, not a stack trace", async () => {
    const err = await collectEvents(prepareDataset({ datasetDir: join(ds, "good.jpg"), outDir: join(tmp, "x"), resolution: 256 })).catch((e) => e);
    expect(isLoraspecError(err) && err.code).toBe("E_DATASET_NOT_FOUND");
    expect(String(err.message)).toMatch(/is a file, not a folder/);
  });

  it("prep where every image is skipped is E_DATASET_EMPTY", async () => {
    const bad = join(tmp, "bad");
    await mkdir(bad);
    await writeFile(join(bad, "a.jpg"), "nope");
    await writeFile(join(bad, "b.png"), Buffer.alloc(0));
    const err = await collectEvents(prepareDataset({ datasetDir: bad, outDir: join(tmp, "prep-bad"), resolution: 256 })).catch((e) => e);
    expect(isLoraspecError(err) && err.code).toBe("E_DATASET_EMPTY");
    expect(await readdir(bad)).toEqual(["a.jpg", "b.png"]);
  });
});
