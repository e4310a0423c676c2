import { describe, expect, it } from "vitest";
import type { ContractInput } from "@loraspec/core/contract/schema.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { planFrom } from "@loraspec/core/plan/plan-inputs.js";
import { contract, dataset, GOOD } from "../../core/test/lint/helpers.js";
import { planRows } from "../src/commands/plan.js";

/**
 * Where regularisation images take part of each batch, plan's steps source, lint's passes message and `loraspec plan`'s
 * "passes per image" row say the training images' share in one wording (plan/epoch.ts regShareText). The CLI row had
 * its own, which printed the training share as the reg images' ("74% of the batches are regularisation images" for 20
 * training and 7 reg images pooled). The shares are written out here: Kohya pads (half), the built-in pools (20 of 27).
 */
const IMAGES = 20;
const REG = 7;
const CASES: Array<[string, Partial<ContractInput>, string]> = [
  ["kohya sdxl", { base: { model: "sdxl" }, trainer: { name: "kohya", version: "v0.10.1" } }, "half of the batches on the dataset"],
  ["built-in flux1-dev", { trainer: { name: "diffusers" } }, "74% of the batches on the dataset"],
];

function build(trainer: Partial<ContractInput>, hp: Record<string, unknown>) {
  const patch = trainer as Record<string, unknown>;
  return contract({}, {
    ...GOOD,
    ...patch,
    hardware: { ...GOOD.hardware, vram_gb: 80 },
    limits: { vram_ceiling_gb: 80 },
    dataset: { path: "./dataset", expected_images: IMAGES, reg_path: "./reg" },
    hyperparameters: { learning_rate: 1e-4, save_every: 250, ...hp },
  } as ContractInput);
}

const sources = { dataset: dataset(IMAGES), regDataset: { ...dataset(REG), path: "./reg" } };

describe("the training images' share is said one way by plan, lint and the CLI", () => {
  it.each(CASES)("%s", (_name, trainer, said) => {
    const fromPasses = planFrom(build(trainer, { passes_per_image: 100 }), sources);
    expect(fromPasses.stepsSource).toContain(said);
    expect(planRows(fromPasses).find((r) => r[0] === "passes per image")![1]).toContain(`(each training image; ${said} (the rest on regularisation images))`);
    // 16,000 steps at batch 4: far over the passes range at any share, so lint's passes rule speaks (at batch 1
    // steps-out-of-range would say it instead)
    const over = build(trainer, { steps: 16000, batch_size: 4 });
    const passes = lintContract(over, sources).find((f) => f.rule === "passes-per-image-out-of-range");
    expect(passes?.message).toContain(said);
  });
});
