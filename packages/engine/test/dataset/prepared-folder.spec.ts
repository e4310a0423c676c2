import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { prepareDataset, type PrepSummary } from "@loraspec/engine/dataset/prepare-dataset.js";
import { MAX_MANIFEST_BYTES, readPrepManifest } from "@loraspec/engine/dataset/prep-manifest.js";
import { choosePreparedDir, findPreparedDir } from "@loraspec/engine/dataset/prepared-folder.js";
import { defaultCaptionDir, describeTrainingData, resolveProjectDataset, trainingDataOf, trainingDatasetDir } from "@loraspec/engine/dataset/project-dataset.js";
import { photoLike } from "./make-images.js";

const RES = 128;
let root: string;
const contract = (dataset: string) =>
  `version: 1\nname: t\nbase: { model: sdxl }\ntrainer: { name: kohya, version: v0.10.1 }\ntarget: character\ndataset: { path: ${dataset}, resolution: ${RES} }\ntrigger: { word: txcl }\n`;

async function images(dir: string, seeds: Record<string, number>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, seed] of Object.entries(seeds)) await writeFile(join(dir, name), await photoLike(160, 160, seed).jpeg().toBuffer());
}

async function prep(datasetDir: string, outDir: string): Promise<PrepSummary> {
  const events = await collectEvents(prepareDataset({ datasetDir, outDir, resolution: RES, concurrency: 1 }));
  return (events.find((e) => e.type === "done") as unknown as { result: PrepSummary }).result;
}

/** Every file under a folder with its sha256: "untouched" is this, before and after. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const path = join(dir, name);
    if ((await stat(path)).isFile()) out[name] = createHash("sha256").update(await readFile(path)).digest("hex");
  }
  return out;
}

/** A project with two contracts side by side: lora.yaml on ./dataset (3 images), c.yaml on ./d2 (2, one of the same name). */
async function twoContracts(name: string): Promise<string> {
  const dir = join(root, name);
  await images(join(dir, "dataset"), { "a.jpg": 1, "b.jpg": 2, "c.jpg": 3 });
  await images(join(dir, "d2"), { "a.jpg": 11, "z.jpg": 12 });
  await writeFile(join(dir, "lora.yaml"), contract("./dataset"));
  await writeFile(join(dir, "c.yaml"), contract("./d2"));
  return dir;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-prepared-"));
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe("a prepared folder belongs to one dataset folder", () => {
  it("two contracts side by side: each captions, trains on and prepares into its own dataset's folder", async () => {
    const dir = await twoContracts("two");
    const preparedA = join(dir, ".loraspec", "prepared");
    const a = await resolveProjectDataset({ cwd: dir });
    expect(a).toMatchObject({ preparedDir: preparedA, prepared: false, otherPrepared: [] });
    expect((await prep(a.datasetDir!, a.preparedDir!)).outputs).toBe(3);
    const afterA = await tree(preparedA);

    // B is not prepared: caption and train use d2 itself, and say whose the prepared folder is.
    const b = await resolveProjectDataset({ cwd: dir, contractPath: "c.yaml" });
    expect(b.prepared).toBe(false);
    expect(defaultCaptionDir(b)).toBe(join(dir, "d2"));
    expect(b.preparedDir).toMatch(/[\\/]\.loraspec[\\/]prepared-d2-[0-9a-f]{8}$/);
    expect(b.otherPrepared).toEqual([{ dir: preparedA, dataset: join(dir, "dataset") }]);
    const trainB = await trainingDatasetDir(dir, join(dir, "d2"));
    expect(trainB).toEqual({ dir: join(dir, "d2"), prepared: false, dataset: join(dir, "d2"), others: [{ dir: preparedA, dataset: join(dir, "dataset") }] });
    expect(describeTrainingData(trainB, "c.yaml")).toMatch(/as it is, not prepared: .*prepared was prepared from .*dataset, not from this dataset; `loraspec prep c.yaml`/);
    expect(await trainingDataOf(dir, join(dir, "d2"))).not.toHaveProperty("crop");

    // prep B goes to its own folder; A's is untouched and A still trains on it.
    const summaryB = await prep(b.datasetDir!, b.preparedDir!);
    expect(summaryB.outDir).toBe(b.preparedDir);
    expect((await readdir(b.preparedDir!)).sort()).toEqual(["a.png", "manifest.json", "z.png"]);
    expect(await tree(preparedA)).toEqual(afterA);
    expect(await trainingDatasetDir(dir, join(dir, "dataset"))).toMatchObject({ dir: preparedA, prepared: true });
    expect(await trainingDatasetDir(dir, join(dir, "d2"))).toMatchObject({ dir: b.preparedDir, prepared: true });
    expect(describeTrainingData(await trainingDatasetDir(dir, join(dir, "d2")), "c.yaml")).toContain(`prepared by loraspec prep from ${join(dir, "d2")}`);
    expect(defaultCaptionDir(await resolveProjectDataset({ cwd: dir, contractPath: "c.yaml" }))).toBe(b.preparedDir);
    expect(defaultCaptionDir(await resolveProjectDataset({ cwd: dir }))).toBe(preparedA);
    // Re-runs find the same folders.
    expect((await choosePreparedDir({ projectDir: dir, datasetDir: join(dir, "d2") })).dir).toBe(b.preparedDir);
    expect((await prep(join(dir, "d2"), b.preparedDir!)).unchanged).toBe(2);

    // --out at another dataset's folder is refused before anything is written.
    await expect(prep(join(dir, "d2"), preparedA)).rejects.toMatchObject({ code: "E_USAGE", message: expect.stringContaining("another dataset") });
    expect(await tree(preparedA)).toEqual(afterA);
  });

  it("a changed dataset.path leaves the old prepared folder alone and uses its own (back again: the old one)", async () => {
    const dir = join(root, "changed");
    await images(join(dir, "dataset"), { "a.jpg": 21, "b.jpg": 22 });
    await images(join(dir, "photos"), { "a.jpg": 23 });
    await writeFile(join(dir, "lora.yaml"), contract("./dataset"));
    const first = await resolveProjectDataset({ cwd: dir });
    await prep(first.datasetDir!, first.preparedDir!);
    await writeFile(join(dir, "lora.yaml"), contract("./photos"));
    const moved = await resolveProjectDataset({ cwd: dir });
    expect(moved).toMatchObject({ prepared: false, otherPrepared: [{ dir: first.preparedDir, dataset: join(dir, "dataset") }] });
    expect(moved.preparedDir).toMatch(/prepared-photos-[0-9a-f]{8}$/);
    expect(defaultCaptionDir(moved)).toBe(join(dir, "photos"));
    expect((await trainingDatasetDir(dir, join(dir, "photos"))).dir).toBe(join(dir, "photos"));
    await writeFile(join(dir, "lora.yaml"), contract("./dataset"));
    expect(await resolveProjectDataset({ cwd: dir })).toMatchObject({ preparedDir: first.preparedDir, prepared: true });
  });

  it("a project moved or copied as a whole still matches its prepared folder (by the manifest's relative path)", async () => {
    const dir = join(root, "before-move");
    await images(join(dir, "dataset"), { "a.jpg": 31 });
    await prep(join(dir, "dataset"), join(dir, ".loraspec", "prepared"));
    expect((await readPrepManifest({ path: join(dir, ".loraspec", "prepared", "manifest.json") }))?.datasetRelative).toBe(join("..", "..", "dataset"));
    const copy = join(root, "copied");
    await cp(dir, copy, { recursive: true });
    const moved = join(root, "after-move");
    await rename(dir, moved);
    for (const project of [moved, copy]) {
      expect(await trainingDataOf(project, join(project, "dataset"))).toMatchObject({ dir: join(project, ".loraspec", "prepared"), prepared: true, crop: "center" });
      expect((await prep(join(project, "dataset"), join(project, ".loraspec", "prepared"))).unchanged).toBe(1);
    }
    // The re-run records the new place.
    expect((await readPrepManifest({ path: join(moved, ".loraspec", "prepared", "manifest.json") }))?.dataset).toBe(join(moved, "dataset"));
  });

  it("a manifest written before the relative path (absolute path only) matches where it was made, not after a move", async () => {
    const dir = join(root, "legacy");
    await images(join(dir, "dataset"), { "a.jpg": 41 });
    const prepared = join(dir, ".loraspec", "prepared");
    await prep(join(dir, "dataset"), prepared);
    const manifest = JSON.parse(await readFile(join(prepared, "manifest.json"), "utf8")) as Record<string, unknown>;
    delete manifest.datasetRelative;
    await writeFile(join(prepared, "manifest.json"), JSON.stringify(manifest));
    expect((await trainingDatasetDir(dir, join(dir, "dataset"))).prepared).toBe(true);
    const moved = join(root, "legacy-moved");
    await rename(dir, moved);
    const found = await trainingDatasetDir(moved, join(moved, "dataset"));
    expect(found).toMatchObject({ dir: join(moved, "dataset"), prepared: false, others: [{ dir: join(moved, ".loraspec", "prepared"), dataset: join(dir, "dataset") }] });
    expect((await choosePreparedDir({ projectDir: moved, datasetDir: join(moved, "dataset") })).dir).toMatch(/prepared-dataset-[0-9a-f]{8}$/);
  });

  const manifest = (fields: Record<string, unknown>) => JSON.stringify({ version: 1, settings: {}, updatedAt: "x", entries: [], ...fields });
  type Hostile = [label: string, make: (path: string) => Promise<unknown>, readable: boolean];
  const hostile: Hostile[] = [
    ["empty object", (p) => writeFile(p, "{}"), false],
    ["not JSON", (p) => writeFile(p, "\u0000\u00ff not json {"), false],
    ["JSON null", (p) => writeFile(p, "null"), false],
    ["a wrong type", (p) => writeFile(p, manifest({ dataset: 42 })), false],
    ["empty paths (resolve('') is the working directory)", (p) => writeFile(p, manifest({ dataset: "", datasetRelative: "" })), false],
    ["a NUL in the paths", (p) => writeFile(p, manifest({ dataset: "/x\u0000", datasetRelative: "..\u0000" })), false],
    ["a path far too long", (p) => writeFile(p, manifest({ dataset: `/${"x".repeat(5000)}` })), false],
    ["a folder named manifest.json", (p) => mkdir(p), false],
    ["over the size cap (sparse)", async (p) => { await writeFile(p, "{"); await truncate(p, MAX_MANIFEST_BYTES + 1); }, false],
    ...(process.platform === "win32" ? [] : [["a FIFO (a plain read would block)", async (p: string) => execFileSync("mkfifo", [p]), false] as Hostile]),
    // Schema-valid, but naming no folder: a relative path where the absolute one goes, an absolute one where the relative one goes.
    ["relative and absolute swapped", (p) => writeFile(p, manifest({ dataset: "../../dataset", datasetRelative: "/nowhere/dataset" })), true],
  ];

  it.each(hostile)("a hostile manifest (%s) is nobody's: no throw, never used, never written over by default", async (label, make, readable) => {
    const dir = join(root, `hostile-${createHash("sha256").update(label).digest("hex").slice(0, 8)}`);
    await images(join(dir, "dataset"), { "a.jpg": 51 });
    await mkdir(join(dir, ".loraspec", "prepared"), { recursive: true });
    const path = join(dir, ".loraspec", "prepared", "manifest.json");
    await make(path);
    expect((await readPrepManifest({ path })) !== undefined).toBe(readable);
    // A folder whose manifest names no usable path is shown with no dataset.
    const others = [{ dir: join(dir, ".loraspec", "prepared"), dataset: undefined }];
    expect(await findPreparedDir({ projectDir: dir, datasetDir: join(dir, "dataset") })).toEqual({ others });
    expect(await trainingDatasetDir(dir, join(dir, "dataset"))).toMatchObject({ dir: join(dir, "dataset"), prepared: false });
    const chosen = await choosePreparedDir({ projectDir: dir, datasetDir: join(dir, "dataset") });
    expect(chosen).toMatchObject({ existing: false, dir: expect.stringMatching(/prepared-dataset-[0-9a-f]{8}$/) });
    await writeFile(join(dir, "lora.yaml"), contract("./dataset"));
    expect(defaultCaptionDir(await resolveProjectDataset({ cwd: dir }))).toBe(join(dir, "dataset"));
    if (readable) await expect(prep(join(dir, "dataset"), join(dir, ".loraspec", "prepared"))).rejects.toMatchObject({ code: "E_USAGE" });
  });

  it("a junk file in .loraspec named like a prepared folder, and no .loraspec at all, are no prepared folder", async () => {
    const dir = join(root, "junk-names");
    await mkdir(join(dir, ".loraspec"), { recursive: true });
    await writeFile(join(dir, ".loraspec", "prepared-x"), "not a folder");
    expect(await findPreparedDir({ projectDir: dir, datasetDir: join(dir, "dataset") })).toEqual({ others: [] });
    expect(await findPreparedDir({ projectDir: join(root, "nowhere"), datasetDir: join(root, "nowhere", "dataset") })).toEqual({ others: [] });
    expect((await choosePreparedDir({ projectDir: dir, datasetDir: join(dir, "dataset") })).dir).toBe(join(dir, ".loraspec", "prepared"));
  });
});
