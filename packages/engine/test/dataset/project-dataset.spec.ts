import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultCaptionDir, resolveProjectDataset } from "@loraspec/engine/dataset/project-dataset.js";

let root: string;
const contract = (base: string, dataset = "{ path: ./photos }") =>
  `version: 1\nname: t\nbase: { model: ${base} }\ntrainer: { name: kohya, version: v0.10.1 }\ntarget: character\ndataset: ${dataset}\ntrigger: { word: txcl }\n`;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-project-"));
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe("resolveProjectDataset", () => {
  it.each([
    ["sdxl", "{ path: ./photos }", 1024, false],
    ["flux1-dev", "{ path: ./photos }", 1024, true],
    ["qwen-image", "{ path: ./photos }", 1328, true],
    ["sdxl", "{ path: ./photos, resolution: 768 }", 768, false],
  ])("%s with dataset %s -> resolution %d, natural-language encoder %s", async (base, dataset, resolution, natural) => {
    const dir = join(root, `${base}-${resolution}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "lora.yaml"), contract(base, dataset));
    const project = await resolveProjectDataset({ cwd: dir });
    expect(project).toMatchObject({ resolution, naturalLanguageEncoder: natural, projectDir: dir, datasetDir: join(dir, "photos"), preparedDir: join(dir, ".loraspec", "prepared"), prepared: false });
  });

  it("works without a contract when none is there, and fails when one was named", async () => {
    const dir = join(root, "empty");
    await mkdir(dir, { recursive: true });
    // No dataset, so no prepared folder either (prep picks one for its --dataset: prepared-folder.ts).
    expect(await resolveProjectDataset({ cwd: dir })).toEqual({ projectDir: dir });
    await expect(resolveProjectDataset({ cwd: dir, contractPath: "other.yaml" })).rejects.toMatchObject({ code: "E_CONTRACT_NOT_FOUND" });
  });

  it("captions the prepared folder once prep has written its manifest for this dataset, not another's", async () => {
    const dir = join(root, "captions");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "lora.yaml"), contract("sdxl"));
    const before = await resolveProjectDataset({ cwd: dir });
    expect(defaultCaptionDir(before)).toBe(join(dir, "photos"));
    const preparedDir = before.preparedDir!;
    await mkdir(preparedDir, { recursive: true });
    const manifest = (dataset: string) => JSON.stringify({ version: 1, dataset, settings: {}, updatedAt: "x", entries: [] });
    await writeFile(join(preparedDir, "manifest.json"), manifest(join(dir, "other")));
    expect(defaultCaptionDir(await resolveProjectDataset({ cwd: dir }))).toBe(join(dir, "photos"));
    await writeFile(join(preparedDir, "manifest.json"), manifest(join(dir, "photos")));
    expect(defaultCaptionDir(await resolveProjectDataset({ cwd: dir }))).toBe(preparedDir);
  });
});
