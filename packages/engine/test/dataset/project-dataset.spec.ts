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
    expect(project).toMatchObject({ resolution, naturalLanguageEncoder: natural, projectDir: dir, datasetDir: join(dir, "photos"), preparedDir: join(dir, ".loraspec", "prepared") });
  });

  it("works without a contract when none is there, and fails when one was named", async () => {
    const dir = join(root, "empty");
    await mkdir(dir, { recursive: true });
    expect(await resolveProjectDataset({ cwd: dir })).toEqual({ projectDir: dir, preparedDir: join(dir, ".loraspec", "prepared") });
    await expect(resolveProjectDataset({ cwd: dir, contractPath: "other.yaml" })).rejects.toMatchObject({ code: "E_CONTRACT_NOT_FOUND" });
  });

  it("captions the prepared folder once prep has written its manifest", async () => {
    const dir = join(root, "captions");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "lora.yaml"), contract("sdxl"));
    const before = await resolveProjectDataset({ cwd: dir });
    expect(defaultCaptionDir(before)).toBe(join(dir, "photos"));
    await mkdir(before.preparedDir, { recursive: true });
    await writeFile(join(before.preparedDir, "manifest.json"), "{}");
    expect(defaultCaptionDir(before)).toBe(before.preparedDir);
  });
});
