import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { initProject } from "@loraspec/engine/project/init-project.js";
import { checkProject } from "@loraspec/engine/project/check-project.js";
import { photoLike } from "../dataset/make-images.js";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-init-"));
  const ds = join(tmp, "dataset");
  await mkdir(ds);
  for (let i = 0; i < 15; i++) await photoLike(320, 320, 30 + i * 7).jpeg().toFile(join(ds, `p${i}.jpg`));
  await photoLike(320, 320, 30).jpeg().toFile(join(ds, "p0-copy.jpg")); // same pixels, same bytes
  await writeFile(join(ds, "broken.jpg"), "not an image");
  await writeFile(join(ds, "empty.png"), Buffer.alloc(0));
  await writeFile(join(ds, "notes.md"), "# notes");
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("initProject", () => {
  it("counts only the images prep will use in expected_images (not broken, empty or duplicate files)", async () => {
    // 320 px images: kept at 512 (upscaled), not at SDXL's native 1024 (init-then-check.spec.ts says what init does then).
    const r = await initProject({ choices: { base: "sdxl", target: "character", trigger: "txcl", resolution: 512 }, cwd: tmp });
    expect(r.yaml).toMatch(/expected_images: 15\b/);
  });

  it("a --resolution the trainer fails on (Kohya SDXL square 1040) is refused with check's rule, naming the flag, and nothing is written", async () => {
    const path = "side-1040.yaml";
    const err = await initProject({ choices: { base: "sdxl", target: "character", trigger: "txcl", trainer: "kohya", resolution: 1040 }, path, cwd: tmp }).catch((e: unknown) => e);
    expect(isLoraspecError(err) && [err.code, err.field]).toEqual(["E_USAGE", "dataset.resolution"]);
    expect((err as Error).message).toMatch(/^--resolution is 1040: Kohya sd-scripts/);
    expect(isLoraspecError(err) && err.hint).toMatch(/^Pass --resolution 1024 or 1056 \(a multiple of 32\)/);
    expect(existsSync(join(tmp, path))).toBe(false);
  });

  // --base-path is held to check's preflight (preflight-base.ts): what init writes, check's base-weights rules pass.
  it.each<[string, (root: string) => Promise<string>, string | null, RegExp | null]>([
    ["a path that does not exist", async (root) => join(root, "nope"), "E_FILE_NOT_FOUND", /^--base-path '.*nope' does not exist \(.*nope\): the run would fail/],
    ["an empty folder", async (root) => mkdir(join(root, "empty")).then(() => "./empty"), "E_USAGE", /^cannot tell what --base-path '\.\/empty' holds: the folder holds no model_index\.json/],
    ["FLUX.1 weights for an SDXL contract", async (root) => pipeline(root, "flux", "FluxPipeline"), "E_USAGE", /^--base-path '.*flux' holds a .*FluxPipeline.*but --base is Stable Diffusion XL/],
    ["an SDXL diffusers folder", async (root) => pipeline(root, "sdxl", "StableDiffusionXLPipeline"), null, null],
    ["a Hugging Face id (not local: the first run downloads it)", async () => "stabilityai/stable-diffusion-xl-base-1.0", null, null],
  ])("--base-path %s", async (_name, makePath, code, message) => {
    const root = await mkdtemp(join(tmpdir(), "loraspec-init-base-"));
    try {
      const basePath = await makePath(root);
      const init = initProject({ choices: { base: "sdxl", target: "character", trigger: "txcl", basePath }, cwd: root });
      if (code) {
        const error = await init.then(() => undefined, (e: unknown) => e);
        expect(isLoraspecError(error) && [error.code, error.field]).toEqual([code, "base.path"]);
        expect((error as Error).message).toMatch(message!);
        expect(isLoraspecError(error) && error.hint).toMatch(/[Pp]oint --base-path at /);
        expect(existsSync(join(root, "lora.yaml")), "nothing written").toBe(false);
        return;
      }
      await init;
      const check = await checkProject({ cwd: root, skipDataset: true, env: { ...process.env, HF_HUB_CACHE: join(root, "hf") } });
      expect(check.findings.filter((f) => f.rule.startsWith("base-") && f.severity === "error")).toEqual([]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("a relative --base-path is the contract's, as check reads it (-o sub/lora.yaml looks in sub/)", async () => {
    const root = await mkdtemp(join(tmpdir(), "loraspec-init-base-"));
    try {
      await mkdir(join(root, "sub"));
      await pipeline(join(root, "sub"), "sdxl", "StableDiffusionXLPipeline");
      await initProject({ choices: { base: "sdxl", target: "character", trigger: "txcl", basePath: "./sdxl" }, cwd: root, path: "sub/lora.yaml" });
      await expect(initProject({ choices: { base: "sdxl", target: "character", trigger: "txcl", basePath: "./sub/sdxl" }, cwd: root, path: "sub/other.yaml" })).rejects.toThrow(/'\.\/sub\/sdxl' does not exist \(.*sub\/sub\/sdxl\)/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

async function pipeline(root: string, name: string, cls: string): Promise<string> {
  await mkdir(join(root, name), { recursive: true });
  await writeFile(join(root, name, "model_index.json"), JSON.stringify({ _class_name: cls }));
  return join(root, name);
}
