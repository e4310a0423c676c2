import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { isLoraspecError, type LoraspecError } from "@loraspec/core/errors.js";
import { applyPinChoice, mergePins, PINS_FILE, writePinsFile, type DatasetPins } from "@loraspec/engine/dataset/dataset-pins.js";
import { readDatasetPins, saveDatasetPinChoice } from "@loraspec/engine/dataset/stored-pins.js";
import { prepareDataset, type PrepSummary } from "@loraspec/engine/dataset/prepare-dataset.js";
import { scanDataset } from "@loraspec/engine/dataset/scan-dataset.js";
import { checkProject } from "@loraspec/engine/project/check-project.js";
import { photoLike } from "./make-images.js";

let project: string;
let dataset: string;

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), "loraspec-pins-"));
  dataset = join(project, "dataset");
  await mkdir(dataset);
  // a-small is a resized re-encode of a (a true near duplicate: dedupe keeps a, the bigger one); b is distinct.
  await writeFile(join(dataset, "a.jpg"), await photoLike(320, 240, 1).jpeg({ quality: 90 }).toBuffer());
  await writeFile(join(dataset, "a-small.jpg"), await photoLike(320, 240, 1).resize(288, 216).jpeg({ quality: 70 }).toBuffer());
  await writeFile(join(dataset, "b.png"), await photoLike(300, 300, 2).png().toBuffer());
  await writeFile(
    join(project, "lora.yaml"),
    "version: 1\nname: pins\nbase: { model: sdxl }\ntrainer: { name: diffusers }\ntarget: character\ndataset: { path: ./dataset, resolution: 128 }\ntrigger: { word: zxqv }\n",
  );
});

afterAll(async () => {
  await rm(project, { recursive: true, force: true });
});

async function kept(pins: DatasetPins): Promise<{ prep: string[]; scan: string[]; check: string[]; planned: number }> {
  await rm(join(project, ".loraspec"), { recursive: true, force: true });
  await writePinsFile({ projectDir: project, file: { datasets: [{ dataset, datasetRelative: "dataset", ...pins }] } });
  const stored = (await readDatasetPins({ projectDir: project, datasetDir: dataset })).pins;
  const merged = mergePins(stored, undefined);
  const events = await collectEvents(
    prepareDataset({ datasetDir: dataset, outDir: join(project, ".loraspec", "prepared"), resolution: 128, concurrency: 1, pinned: merged.keep, distinct: merged.distinct }),
  );
  const summary = (events.find((e) => e.type === "done") as unknown as { result: PrepSummary }).result;
  const dropped = new Set(summary.duplicates.flatMap((c) => c.drop));
  const scan = await scanDataset({ dir: dataset, resolution: 128, concurrency: 1, pinned: merged.keep, distinct: merged.distinct });
  const check = await checkProject({ cwd: project });
  return {
    prep: ["a-small.jpg", "a.jpg", "b.png"].filter((f) => !dropped.has(f)),
    scan: scan.images.map((i) => i.file).sort(),
    check: (check.dataset?.images ?? []).map((i) => i.file).sort(),
    planned: check.plan.images.count,
  };
}

describe("dataset pins: the user's keep/drop choice on duplicates", () => {
  it("round-trips through an atomic write and reads a missing file as no pins", async () => {
    const dir = await mkdtemp(join(tmpdir(), "loraspec-pins-rt-"));
    try {
      const at = { projectDir: dir, datasetDir: join(dir, "ds") };
      expect(await readDatasetPins(at)).toEqual({ pins: { keep: [], distinct: [] } });
      await saveDatasetPinChoice({ ...at, choice: { action: "keep", file: "x/b.png", cluster: ["a.png", "x/b.png"] } });
      await saveDatasetPinChoice({ ...at, choice: { action: "distinct", files: ["z.png", "a.png"] } });
      expect(await readDatasetPins(at)).toEqual({ pins: { keep: ["x/b.png"], distinct: [["a.png", "z.png"]] } });
      expect((await readdir(join(dir, ".loraspec"))).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("choosing one image of a cluster withdraws the pins of the others, so the choice wins", () => {
    const before: DatasetPins = { keep: ["a.png", "other.png"], distinct: [] };
    expect(applyPinChoice(before, { action: "keep", file: "b.png", cluster: ["a.png", "b.png"] }).keep).toEqual(["b.png", "other.png"]);
    expect(mergePins({ keep: ["b.png"], distinct: [["a.png", "b.png"]] }, ["c.png", "b.png"])).toEqual({ keep: ["b.png", "c.png"], distinct: [["a.png", "b.png"]] });
  });

  it.each([
    ["not JSON", "{keep: [", "(none)"],
    ["wrong version", JSON.stringify({ version: 3, keep: [] }), "version"],
    ["version 2 with version 1's lists", JSON.stringify({ version: 2, keep: [] }), "(root)"],
    ["entry naming no dataset", JSON.stringify({ version: 2, datasets: [{ keep: ["a.png"] }] }), "datasets.0"],
    ["entry with a relative absolute", JSON.stringify({ version: 2, datasets: [{ dataset: "dataset", keep: [] }] }), "datasets.0.dataset"],
    ["entry with NUL in its folder", JSON.stringify({ version: 2, datasets: [{ datasetRelative: "d\u0000", keep: [] }] }), "datasets.0.datasetRelative"],
    ["entry with an unknown field", JSON.stringify({ version: 2, datasets: [{ datasetRelative: "d", drop: [] }] }), "datasets.0"],
    ["entry pin outside its dataset", JSON.stringify({ version: 2, datasets: [{ datasetRelative: "d", keep: ["../x.png"] }] }), "datasets.0.keep.0"],
    ["legacy pin outside", JSON.stringify({ version: 2, legacy: { keep: ["/etc/passwd"] } }), "legacy.keep.0"],
    ["unknown field", JSON.stringify({ version: 1, keep: [], drop: ["a.png"] }), "(root)"],
    ["parent folder", JSON.stringify({ version: 1, keep: ["../secret.png"] }), "keep.0"],
    ["hidden parent", JSON.stringify({ version: 1, keep: ["a/../../x.png"] }), "keep.0"],
    ["absolute path", JSON.stringify({ version: 1, keep: ["/etc/passwd"] }), "keep.0"],
    ["windows drive", JSON.stringify({ version: 1, keep: ["C:/x.png"] }), "keep.0"],
    ["backslash", JSON.stringify({ version: 1, keep: ["..\\x.png"] }), "keep.0"],
    ["NUL byte", JSON.stringify({ version: 1, keep: ["a.png\u0000"] }), "keep.0"],
    ["not normalised", JSON.stringify({ version: 1, keep: ["./a.png"] }), "keep.0"],
    ["pair with itself", JSON.stringify({ version: 1, distinct: [["a.png", "a.png"]] }), "distinct.0"],
    ["pair of three", JSON.stringify({ version: 1, distinct: [["a.png", "b.png", "c.png"]] }), "distinct.0"],
    ["keep not a list", JSON.stringify({ version: 1, keep: "a.png" }), "keep"],
  ])("a hostile pins file (%s) is refused with E_DATASET_PINS_INVALID naming file and field", async (_name, text, field) => {
    const dir = await mkdtemp(join(tmpdir(), "loraspec-pins-bad-"));
    try {
      await mkdir(join(dir, ".loraspec"));
      await writeFile(join(dir, PINS_FILE), text);
      const error = (await readDatasetPins({ projectDir: dir, datasetDir: join(dir, "d") }).catch((e: unknown) => e)) as LoraspecError;
      expect(isLoraspecError(error)).toBe(true);
      expect(error.code).toBe("E_DATASET_PINS_INVALID");
      expect(error.file).toBe(PINS_FILE);
      if (field !== "(none)") expect(error.field).toBe(field);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("check reports a hostile pins file as one coded finding (file, field, code) and goes on without the pins", async () => {
    await mkdir(join(project, ".loraspec"), { recursive: true });
    await writeFile(join(project, PINS_FILE), JSON.stringify({ version: 1, keep: ["../../etc/passwd"] }));
    const r = await checkProject({ cwd: project });
    const pins = r.findings.filter((f) => f.rule === "dataset-pins-invalid");
    expect(pins).toHaveLength(1);
    expect(pins[0]!.message).toMatch(/^\.loraspec\/dataset-pins\.json: keep\.0: .*E_DATASET_PINS_INVALID/);
    expect(r.dataset?.images.map((i) => i.file).sort()).toEqual(["a.jpg", "b.png"]);
  });

  it("prep, the scan and check (and its plan) keep the same images: by default, a pinned near duplicate, and 'keep both'", async () => {
    const byDefault = await kept({ keep: [], distinct: [] });
    expect(byDefault.prep).toEqual(["a.jpg", "b.png"]);
    const pinned = await kept({ keep: ["a-small.jpg"], distinct: [] });
    expect(pinned.prep).toEqual(["a-small.jpg", "b.png"]);
    const both = await kept({ keep: [], distinct: [["a.jpg", "a-small.jpg"]] });
    expect(both.prep).toEqual(["a-small.jpg", "a.jpg", "b.png"]);
    for (const r of [byDefault, pinned, both]) {
      expect(r.scan).toEqual(r.prep);
      expect(r.check).toEqual(r.prep);
      expect(r.planned).toBe(r.prep.length);
    }
  });
});
