import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RULES } from "@loraspec/core/lint/finding.js";
import { collectEvents } from "@loraspec/core/events.js";
import { datasetFindings, unpreparedFindings } from "@loraspec/engine/dataset/dataset-findings.js";
import { nameFew } from "@loraspec/engine/dataset/name-few.js";
import { prepareDataset } from "@loraspec/engine/dataset/prepare-dataset.js";
import type { DatasetScan } from "@loraspec/engine/dataset/scan-dataset.js";
import { checkProject } from "@loraspec/engine/project/check-project.js";

/**
 * Hidden files (names starting with ".") are never read, by prep, check or the trainers, and never
 * left out unsaid: a folder of macOS `._x.jpg` twins copied off a FAT stick must not look empty.
 */
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-hidden-"));
  await mkdir(join(tmp, "dataset", ".thumbs"), { recursive: true });
  for (let i = 0; i < 11; i++) await writeFile(join(tmp, "dataset", `._IMG_${String(i).padStart(2, "0")}.jpg`), "AppleDouble");
  await writeFile(join(tmp, "dataset", ".thumbs", "a.jpg"), "x");
  await writeFile(
    join(tmp, "lora.yaml"),
    "version: 1\nname: hidden\nbase: { model: sdxl }\ntrainer: { name: diffusers }\ntarget: character\ndataset: { path: ./dataset }\ntrigger: { word: txcl }\n",
  );
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("a folder holding only hidden files", () => {
  it("check: E_DATASET_EMPTY whose hint counts and names them", async () => {
    const error = await checkProject({ path: "lora.yaml", cwd: tmp }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_DATASET_EMPTY", field: "dataset.path" });
    expect((error as { hint: string }).hint).toContain('It holds 12 hidden file(s), left out because their names start with "." (._IMG_00.jpg, ._IMG_01.jpg, ._IMG_02.jpg and 9 more)');
  });

  it("prep: the same; nothing of the user's is touched", async () => {
    const run = collectEvents(prepareDataset({ datasetDir: join(tmp, "dataset"), outDir: join(tmp, "out"), resolution: 256 }));
    const error = await run.catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_DATASET_EMPTY" });
    expect((error as { hint: string }).hint).toMatch(/It holds 12 hidden file\(s\), left out because their names start with "\." \(\.\_IMG_00\.jpg, \.\_IMG_01\.jpg, \.\_IMG_02\.jpg and 9 more\): rename any image that should train\./);
    expect(await readdir(join(tmp, "dataset"))).toHaveLength(12);
  });
});

describe("nameFew", () => {
  it.each([
    [[], ""],
    [["a"], "a"],
    [["a", "b", "c"], "a, b, c"],
    [["a", "b", "c", "d"], "a, b, c and 1 more"],
  ])("%j -> %s", (names, text) => {
    expect(nameFew(names, 3)).toBe(text);
  });
});

describe("every rule check's dataset findings emit is documented in RULES", () => {
  it("datasetFindings and unpreparedFindings", () => {
    const scan: DatasetScan = {
      path: "d",
      images: [{ file: "sub/a.bmp", width: 1, height: 1, format: "bmp", caption: null }],
      unreadable: [],
      candidates: 3,
      skipped: [{ file: "b.jpg", code: "truncated", message: "truncated" }],
      warnings: [{ file: "sub/a.bmp", code: "first-frame-only", message: "2 frames" }],
      sources: [],
      captionFiles: [],
      duplicates: [{ kind: "exact", keep: "a.jpg", drop: ["c.jpg"], evidence: {} }] as unknown as DatasetScan["duplicates"],
      orphanCaptions: ["x.txt"],
      orphanHints: {},
      captionProblems: [{ file: "y.txt", code: "caption-not-utf8", message: "m" }],
      hidden: [".DS_Store"],
    };
    const ids = new Set(RULES.map((r) => r.id));
    const emitted = [
      ...datasetFindings(scan),
      ...unpreparedFindings(scan, "dataset.path", { extensions: [".png"], subfolders: false }),
      // b.jpg is read by this trainer and cannot be decoded: the error as well as the warning.
      ...unpreparedFindings(scan, "dataset.path", { extensions: [".jpg"], subfolders: false }),
    ];
    expect(emitted.length).toBe(11);
    for (const rule of ["dataset-not-prepared-unreadable", "dataset-not-prepared-unread", "dataset-animated"]) expect(emitted.map((f) => f.rule)).toContain(rule);
    expect(emitted.filter((f) => !ids.has(f.rule)).map((f) => f.rule)).toEqual([]);
    for (const f of emitted) expect(RULES.find((r) => r.id === f.rule)?.severity, f.rule).toBe(f.severity);
  });
});
