import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InitChoices } from "@loraspec/core/contract/recommend-contract.js";
import { INIT_SIDE_FROM_IMAGES } from "@loraspec/core/knowledge/trainer-resolution.js";
import { initProject } from "@loraspec/engine/project/init-project.js";
import { checkProject } from "@loraspec/engine/project/check-project.js";
import { photoLike } from "../dataset/make-images.js";

// init without --resolution over images smaller than the base's native side: it wrote the native side
// (Qwen-Image 1328 over 1024 px images) and check then warned image-below-native ("upscaled images train
// blur"), though init --help says "native, if the images are big enough".
let tmp: string;
const SIDES = [1024, 768, 512, 1600];
const env = () => ({ ...process.env, HF_HUB_CACHE: join(tmp, "hf-cache") });

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-init-side-"));
  for (const side of SIDES) {
    const ds = join(tmp, `s${side}`, "dataset");
    await mkdir(ds, { recursive: true });
    for (let i = 0; i < 20; i++) {
      await photoLike(side, side + 32 * (i % 3), side * 31 + i).jpeg().toFile(join(ds, `${i}.jpg`));
      await writeFile(join(ds, `${i}.txt`), "txcl, a photo of a subject in a room");
    }
  }
}, 120_000);
afterAll(() => rm(tmp, { recursive: true, force: true }));

async function initAndCheck(side: number, choices: Partial<InitChoices>) {
  const cwd = join(tmp, `s${side}`);
  const out = `l-${Math.random().toString(36).slice(2)}.yaml`;
  await initProject({ choices: { target: "character", trigger: "txcl", base: "sdxl", ...choices } as InitChoices, cwd, path: out });
  const text = await readFile(join(cwd, out), "utf8");
  const check = await checkProject({ cwd, path: out, env: env() });
  return { resolution: parse(text).dataset.resolution as number, text, rules: check.findings.map((f) => f.rule) };
}

describe("init trains at the side the images reach", () => {
  it.each<[string, number, Partial<InitChoices>, number, boolean]>([
    ["Qwen-Image over 1024 px images", 1024, { base: "qwen-image" }, 1024, true],
    ["SDXL over 768 px images", 768, { base: "sdxl" }, 768, true],
    ["SDXL over 1600 px images: native", 1600, { base: "sdxl" }, 1024, false],
    ["SDXL over 512 px images: too far below native, kept (check names them)", 512, { base: "sdxl" }, 1024, false],
    ["--resolution wins", 768, { base: "sdxl", resolution: 1024 }, 1024, false],
  ])("%s", async (_name, side, choices, want, lowered) => {
    const r = await initAndCheck(side, choices);
    expect(r.resolution).toBe(want);
    if (lowered) {
      expect(r.text).toMatch(new RegExp(`shortest side of all 20 images is ${side} px, below .* trained at ${want} px rather than upscaled`));
      expect(r.rules).not.toContain("image-below-native");
    }
    if (side === 512) expect(r.rules).toContain("image-below-native");
    if (side === 512) expect(512).toBeLessThan(1024 * INIT_SIDE_FROM_IMAGES.minShare);
  });
});
