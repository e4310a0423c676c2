import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkProject } from "@loraspec/engine/project/check-project.js";

/**
 * `loraspec check` on a real folder of 512 px images under a 1024 px base: image-below-native ("upscaled images train
 * blur") for a trainer handed the training side, and not for fal, whose hosted endpoints pick their own resolution
 * (compile/trainer-receives.ts; the class over every rule and trainer is core's rules-trainer-receives.spec.ts).
 */
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loraspec-check-receives-"));
  mkdirSync(join(dir, "dataset"));
  for (let i = 0; i < 15; i++) {
    await sharp({ create: { width: 512, height: 512, channels: 3, background: { r: 15 * i, g: 90, b: 30 } } }).png().toFile(join(dir, "dataset", `p${i}.png`));
    writeFileSync(join(dir, "dataset", `p${i}.txt`), `txcl, a portrait ${i}`);
  }
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(file: string, trainer: "fal" | "ai-toolkit"): string {
  const contract = {
    version: 1,
    name: "txcl-character",
    base: { model: "flux1-dev" },
    trainer: { name: trainer },
    hardware: trainer === "fal" ? { kind: "fal" } : { kind: "local", gpu: "RTX 4090", vram_gb: 24 },
    target: "character",
    dataset: { path: "./dataset" },
    captions: { style: "natural" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 1500 },
  };
  writeFileSync(join(dir, file), stringify(contract));
  return file;
}

describe("check judges the training side only where the trainer is handed it", () => {
  it.each([
    ["ai-toolkit", true],
    ["fal", false],
  ] as const)("%s on 512 px images under FLUX.1's 1024: image-below-native %s", async (trainer, said) => {
    const { findings } = await checkProject({ cwd: dir, path: write(`${trainer}.yaml`, trainer), env: { ...process.env, HF_HUB_CACHE: join(dir, "hf") } });
    expect(findings.some((f) => f.rule === "image-below-native")).toBe(said);
  });
});
