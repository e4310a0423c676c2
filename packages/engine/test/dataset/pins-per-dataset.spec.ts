import { cp, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PINS_FILE } from "@loraspec/engine/dataset/dataset-pins.js";
import { readDatasetPins, saveDatasetPinChoice } from "@loraspec/engine/dataset/stored-pins.js";
import { checkProject } from "@loraspec/engine/project/check-project.js";
import { createApp } from "@loraspec/engine/server/create-app.js";
import { defaultDeps } from "@loraspec/engine/server/default-deps.js";
import { photoLike } from "./make-images.js";

/**
 * Pins belong to the dataset they were made for: one project, two contracts on ./dataset and ./d2,
 * both holding the same file names (a.jpg, its near duplicate a-small.jpg, b.png).
 */
let root: string;
let project: string;
const contract = (name: string, path: string) =>
  `version: 1\nname: ${name}\nbase: { model: sdxl }\ntrainer: { name: diffusers }\ntarget: character\ndataset: { path: ${path}, resolution: 128 }\ntrigger: { word: zxqv }\n`;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-pins-two-"));
  project = join(root, "project");
  for (const ds of ["dataset", "d2"]) {
    await mkdir(join(project, ds), { recursive: true });
    await writeFile(join(project, ds, "a.jpg"), await photoLike(320, 240, 1).jpeg({ quality: 90 }).toBuffer());
    await writeFile(join(project, ds, "a-small.jpg"), await photoLike(320, 240, 1).resize(288, 216).jpeg({ quality: 70 }).toBuffer());
    await writeFile(join(project, ds, "b.png"), await photoLike(300, 300, 2).png().toBuffer());
  }
  await writeFile(join(project, "lora.yaml"), contract("one", "./dataset"));
  await writeFile(join(project, "two.yaml"), contract("two", "./d2"));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const pinsFile = async () => JSON.parse(await readFile(join(project, PINS_FILE), "utf8"));
const setPins = async (value: unknown) => {
  await mkdir(join(project, ".loraspec"), { recursive: true });
  await writeFile(join(project, PINS_FILE), JSON.stringify(value));
};

/** What check trains on for each contract, and its pins findings. */
async function checked(dir = project): Promise<Record<"dataset" | "d2", { images: string[]; pinsWarnings: string[] }>> {
  const one = async (path: string) => {
    const r = await checkProject({ cwd: dir, path });
    return { images: (r.dataset?.images ?? []).map((i) => i.file).sort(), pinsWarnings: r.findings.filter((f) => f.rule === "dataset-pins-invalid").map((f) => f.message) };
  };
  return { dataset: await one("lora.yaml"), d2: await one("two.yaml") };
}

/** The server's scan (the Dataset page's listing) for a contract: the images it keeps and the pins it shows. */
async function served(contractFile: string): Promise<{ kept: string[]; pins: unknown; finding?: { message: string } }> {
  const token = "t".repeat(32);
  const app = createApp({ projectDir: project, token, contractFile, ...defaultDeps() });
  const res = await app.request("/api/dataset/summary", { headers: { Host: "127.0.0.1:4747", Authorization: `Bearer ${token}` } });
  const listing = await (await app.request("/api/dataset", { headers: { Host: "127.0.0.1:4747", Authorization: `Bearer ${token}` } })).json();
  return { kept: ((await res.json()).summary.images as Array<{ file: string }>).map((i) => i.file).sort(), pins: listing.pins, finding: listing.pinsFinding };
}

const DEFAULT = ["a.jpg", "b.png"];
const PINNED = ["a-small.jpg", "b.png"];
const BOTH = ["a-small.jpg", "a.jpg", "b.png"];

describe("pins belong to the dataset they were made for", () => {
  it("a keep pin made for ./dataset changes ./dataset's dedupe only, in check and the server's scan; a pair made for ./d2 only ./d2's", async () => {
    await rm(join(project, ".loraspec"), { recursive: true, force: true });
    await saveDatasetPinChoice({ projectDir: project, datasetDir: join(project, "dataset"), choice: { action: "keep", file: "a-small.jpg", cluster: ["a.jpg", "a-small.jpg"] } });
    let r = await checked();
    expect(r.dataset).toEqual({ images: PINNED, pinsWarnings: [] });
    expect(r.d2).toEqual({ images: DEFAULT, pinsWarnings: [] });
    expect((await served("lora.yaml")).kept).toEqual(PINNED);
    expect(await served("two.yaml")).toMatchObject({ kept: DEFAULT, pins: { keep: [], distinct: [] } });

    await saveDatasetPinChoice({ projectDir: project, datasetDir: join(project, "d2"), choice: { action: "distinct", files: ["a.jpg", "a-small.jpg"] } });
    r = await checked();
    expect(r.dataset.images).toEqual(PINNED);
    expect(r.d2.images).toEqual(BOTH);
    expect((await served("lora.yaml")).pins).toEqual({ keep: ["a-small.jpg"], distinct: [] });
    expect((await served("two.yaml")).kept).toEqual(BOTH);
  });

  it("a choice on the page for one dataset keeps every other dataset's pins (and 'forget' forgets this dataset's only)", async () => {
    await rm(join(project, ".loraspec"), { recursive: true, force: true });
    await saveDatasetPinChoice({ projectDir: project, datasetDir: join(project, "dataset"), choice: { action: "keep", file: "a-small.jpg", cluster: ["a.jpg", "a-small.jpg"] } });
    const token = "t".repeat(32);
    const app = createApp({ projectDir: project, token, contractFile: "two.yaml", ...defaultDeps() });
    const post = (body: unknown) =>
      app.request("/api/dataset/pins", { method: "POST", headers: { Host: "127.0.0.1:4747", Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
    expect((await post({ distinct: ["a.jpg", "a-small.jpg"] })).status).toBe(200);
    const file = await pinsFile();
    expect(file.version).toBe(2);
    expect(file.datasets.map((e: { datasetRelative: string; keep: string[] }) => [e.datasetRelative, e.keep])).toEqual([["dataset", ["a-small.jpg"]], ["d2", []]]);
    expect((await checked()).dataset.images).toEqual(PINNED);
    expect((await post({ reset: true })).status).toBe(200);
    expect((await pinsFile()).datasets.map((e: { datasetRelative: string }) => e.datasetRelative)).toEqual(["dataset"]);
    const r = await checked();
    expect([r.dataset.images, r.d2.images]).toEqual([PINNED, DEFAULT]);
  });

  it("an old (version 1) file in a project whose contracts name two datasets applies to neither, with a warning; a page write keeps it", async () => {
    await setPins({ version: 1, keep: ["a-small.jpg"] });
    const r = await checked();
    expect(r.dataset.images).toEqual(DEFAULT);
    expect(r.d2.images).toEqual(DEFAULT);
    for (const w of [r.dataset.pinsWarnings, r.d2.pinsWarnings]) {
      expect(w).toHaveLength(1);
      expect(w[0]).toMatch(/written before they named their dataset.*several datasets \(dataset, d2\)/);
    }
    expect((await served("lora.yaml")).finding?.message).toMatch(/written before they named their dataset/);
    await saveDatasetPinChoice({ projectDir: project, datasetDir: join(project, "d2"), choice: { action: "distinct", files: ["a.jpg", "a-small.jpg"] } });
    const file = await pinsFile();
    expect(file.legacy).toEqual({ keep: ["a-small.jpg"], distinct: [] });
    expect((await checked()).d2.images).toEqual(BOTH);
  });

  it("an old file in a project whose contracts all name one dataset is that dataset's (and a page write moves it into its entry)", async () => {
    const single = join(root, "single");
    await mkdir(join(single, ".loraspec"), { recursive: true });
    await cp(join(project, "d2"), join(single, "d2"), { recursive: true });
    await writeFile(join(single, "lora.yaml"), contract("one", "./d2"));
    await writeFile(join(single, "notes.yaml"), "just: some notes\n"); // not a contract: names no dataset
    await writeFile(join(single, PINS_FILE), JSON.stringify({ version: 1, keep: ["a-small.jpg"] }));
    expect((await checkProject({ cwd: single })).dataset?.images.map((i) => i.file).sort()).toEqual(PINNED);
    // Another folder (prep --dataset) is not the contract's: the old pins are not its.
    expect((await readDatasetPins({ projectDir: single, datasetDir: join(single, "other") })).pins).toEqual({ keep: [], distinct: [] });
    await saveDatasetPinChoice({ projectDir: single, datasetDir: join(single, "d2"), choice: { action: "distinct", files: ["a.jpg", "b.png"] } });
    const file = JSON.parse(await readFile(join(single, PINS_FILE), "utf8"));
    expect(file).toEqual({ version: 2, datasets: [{ dataset: join(single, "d2"), datasetRelative: "d2", keep: ["a-small.jpg"], distinct: [["a.jpg", "b.png"]] }] });
  });

  it("a moved project keeps each dataset's pins (matched relative to the project), and a rewrite records the new place", async () => {
    await rm(join(project, ".loraspec"), { recursive: true, force: true });
    await saveDatasetPinChoice({ projectDir: project, datasetDir: join(project, "dataset"), choice: { action: "keep", file: "a-small.jpg", cluster: ["a.jpg", "a-small.jpg"] } });
    const moved = join(root, "moved");
    await rename(project, moved);
    try {
      const r = await checked(moved);
      expect([r.dataset.images, r.d2.images]).toEqual([PINNED, DEFAULT]);
      // A copy left at the old place would still claim them by the absolute path; a moved one only by the relative path.
      await saveDatasetPinChoice({ projectDir: moved, datasetDir: join(moved, "dataset"), choice: { action: "distinct", files: ["a.jpg", "b.png"] } });
      const file = JSON.parse(await readFile(join(moved, PINS_FILE), "utf8"));
      expect(file.datasets).toEqual([{ dataset: join(moved, "dataset"), datasetRelative: "dataset", keep: ["a-small.jpg"], distinct: [["a.jpg", "b.png"]] }]);
    } finally {
      await rename(moved, project);
    }
  });
});
