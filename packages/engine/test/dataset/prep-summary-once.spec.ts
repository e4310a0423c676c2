import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { prepareDataset, type PrepSummary } from "@loraspec/engine/dataset/prepare-dataset.js";
import { scanDataset } from "@loraspec/engine/dataset/scan-dataset.js";
import { photoLike } from "./make-images.js";

/** Prep's summary lists each file once, and counts captions as check does (a blank caption is none). */
let root: string;
let dataset: string;
let out: string;
let summary: PrepSummary;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-prep-once-"));
  dataset = join(root, "photos");
  out = join(root, "prepared");
  await mkdir(dataset);
  await photoLike(400, 300, 1).jpeg({ quality: 92 }).toFile(join(dataset, "a.jpg"));
  // A near duplicate of a.jpg small enough to be upscaled (a warning of its own) before dedupe leaves it out.
  await photoLike(400, 300, 1).resize(200, 150).jpeg({ quality: 80 }).toFile(join(dataset, "a-tiny.jpg"));
  for (const [i, name] of ["b", "c", "d"].entries()) await photoLike(300, 300, 10 + i).png().toFile(join(dataset, `${name}.png`));
  await writeFile(join(dataset, "b.txt"), "");
  await writeFile(join(dataset, "c.txt"), "  \n");
  await writeFile(join(dataset, "d.txt"), "txcl, d on a chair");
  const events = await collectEvents(prepareDataset({ datasetDir: dataset, outDir: out, resolution: 256 }));
  summary = (events.find((e) => e.type === "done") as unknown as { result: PrepSummary }).result;
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("prep's summary", () => {
  it("lists a near duplicate once, under skipped, not also under 'used, with warnings'", () => {
    expect(summary.skipped.map((s) => [s.source, s.code])).toEqual([["a-tiny.jpg", "near-duplicate"]]);
    const skipped = new Set(summary.skipped.map((s) => s.source));
    expect(summary.warnings.filter((w) => skipped.has(w.source))).toEqual([]);
    expect(summary.warnings.map((w) => w.source)).not.toContain("a-tiny.jpg");
  });

  it("check's scan of the dataset lists that near duplicate once too (a cluster, no warning row)", async () => {
    const scan = await scanDataset({ dir: dataset, resolution: 256 });
    expect(scan.duplicates.flatMap((c) => c.drop)).toEqual(["a-tiny.jpg"]);
    expect(scan.warnings.map((w) => w.file)).not.toContain("a-tiny.jpg");
  });

  it("counts an empty or blank caption as missing, as check does on the prepared folder", async () => {
    expect({ copied: summary.captionsCopied, missing: summary.captionsMissing }).toEqual({ copied: 1, missing: 3 });
    const scan = await scanDataset({ dir: out, decode: false });
    const missing = scan.images.filter((i) => i.caption === null || i.caption === "").length;
    expect(missing).toBe(summary.captionsMissing);
  });

  it("counts a hand-edited prepared caption that is not UTF-8 as missing, as check does (it is kept as it is)", async () => {
    const latin1 = Buffer.from([0x74, 0x78, 0x63, 0x6c, 0x2c, 0x20, 0x63, 0x61, 0x66, 0xe9]); // "txcl, café" in Latin-1
    await writeFile(join(out, "d.txt"), latin1);
    const events = await collectEvents(prepareDataset({ datasetDir: dataset, outDir: out, resolution: 256 }));
    const again = (events.find((e) => e.type === "done") as unknown as { result: PrepSummary }).result;
    const scan = await scanDataset({ dir: out, decode: false });
    expect(again.captionsMissing).toBe(4);
    expect(scan.images.filter((i) => i.caption === null || i.caption === "").length).toBe(again.captionsMissing);
    expect(await readFile(join(out, "d.txt"))).toEqual(latin1);
  });
});
