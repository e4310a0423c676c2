import { describe, expect, it } from "vitest";
import type { ContractInput } from "@loraspec/core/contract/schema.js";
import { getPassesPerImage, getSteps, PASSES_PER_IMAGE_TOLERANCE } from "@loraspec/core/knowledge/recipes.js";
import { fmt, inRange } from "@loraspec/core/lint/lint-rule.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { planFrom } from "@loraspec/core/plan/plan-inputs.js";
import { contract, dataset, GOOD } from "./helpers.js";

/**
 * Lint's passes figure is the plan's, counted as the compiled config runs an epoch (plan/epoch.ts, one function):
 * regularisation images take part of each batch (Kohya pads them to the dataset's entries, ai-toolkit takes them on
 * alternate steps, the built-in pools them; fal takes none), so each training image trains that much less. Before,
 * lint's passes rules and the plan's recommended steps counted every image of every batch as a training image,
 * while the plan's epoch split did not. Table: trainer x reg images (none, fewer, more than the dataset's) x batch,
 * each a few pure lint calls (no CLI). The training share per trainer is written out here, not read from the code.
 */
const IMAGES = 20;
const TRAINERS: Array<[string, Partial<ContractInput>, (reg: number) => number]> = [
  ["kohya sdxl", { base: { model: "sdxl" }, trainer: { name: "kohya", version: "v0.10.1" } }, (reg) => (reg > 0 ? 0.5 : 1)],
  ["ai-toolkit flux1-dev", {}, (reg) => (reg > 0 ? 0.5 : 1)],
  ["built-in flux1-dev", { trainer: { name: "diffusers" } }, (reg) => IMAGES / (IMAGES + reg)],
  ["fal flux1-dev", { trainer: { name: "fal" }, hardware: { kind: "fal" } }, () => 1],
];
const REGS = [0, 7, 150];
const BATCHES = [1, 4];
/** Steps that land below, inside and above the passes range at some batch and share. */
const STEPS = [600, 3000, 16000];

function build(trainer: Partial<ContractInput>, reg: number, hp: Record<string, unknown>) {
  const patch = trainer as Record<string, unknown>;
  const base = {
    ...GOOD,
    ...patch,
    hardware: { ...GOOD.hardware, vram_gb: 80, ...(patch.hardware as object) },
    limits: { vram_ceiling_gb: 80 },
    dataset: { path: "./dataset", expected_images: IMAGES, ...(reg > 0 ? { reg_path: "./reg" } : {}) },
    hyperparameters: { learning_rate: 1e-4, save_every: 250, ...hp },
  } as ContractInput;
  return contract({}, base);
}

/** The plan's sources as check hands them (plan/plan-inputs.ts): the dataset's scan and the reg folder's. */
const sources = (reg: number) => ({ dataset: dataset(IMAGES), ...(reg > 0 ? { regDataset: { ...dataset(reg), path: "./reg" } } : {}) });
const rules = (c: ReturnType<typeof build>, reg: number) => lintContract(c, sources(reg));

describe("lint's passes per image = the plan's, reg images counted as the trainer mixes them in", () => {
  const cases = TRAINERS.flatMap(([t, trainer, share]) => REGS.flatMap((reg) => BATCHES.map((b) => [t, reg, b, trainer, share(reg)] as const)));
  it.each(cases)("%s, %i reg images, batch %i", (t, reg, b, trainer, share) => {
    const fal = t.startsWith("fal");
    const model = getBaseModel(build(trainer, reg, {}).base.model)!;
    const rec = getPassesPerImage("character", model.family);
    const stepsRec = getSteps("character");
    const k = PASSES_PER_IMAGE_TOLERANCE.factor;
    const batch = fal ? 1 : b;
    for (const steps of STEPS) {
      // fal is handed no batch (compile/trainer-receives.ts): its batch_size is not sent and the plan counts batch 1
      const c = build(trainer, reg, { steps, batch_size: b });
      const plan = planFrom(c, sources(reg));
      expect(plan.trainShare).toBeCloseTo(share, 6);
      expect(plan.passesPerImage).toBeCloseTo((steps * batch * share) / IMAGES, 1);
      const finding = rules(c, reg).find((f) => f.rule === "passes-per-image-out-of-range");
      const out = plan.passesPerImage >= rec.range.max * k || plan.passesPerImage <= rec.range.min / k;
      const stepsSay = batch === 1 && !inRange(Math.floor(steps * share + 1e-6), stepsRec.steps);
      // fal picks its own batch: passes per image are unknown there (compile/trainer-receives.ts)
      expect(Boolean(finding), `${steps} steps: ${plan.passesPerImage} passes`).toBe(!fal && out && !stepsSay);
      if (!finding) continue;
      expect(finding.message).toContain(`trains ${fmt(plan.passesPerImage)} times`);
      // following the fix clears both the passes and the steps rule
      const fixedSteps = Number(/steps to about (\d+)/.exec(finding.fix)![1]);
      const fixed = rules(build(trainer, reg, { steps: fixedSteps, batch_size: b }), reg).map((f) => f.rule);
      expect(fixed).not.toContain("passes-per-image-out-of-range");
      expect(fixed).not.toContain("steps-out-of-range");
    }
  });

  it.each(cases)("%s, %i reg images, batch %i: the plan's recommended steps and passes_per_image steps are what lint asks for", (t, reg, b, trainer, share) => {
    const fal = t.startsWith("fal");
    const batch = { batch_size: b };
    // no steps: the recipe's ~100 passes per image on the training images, over the batch and the training images' share of it
    const recommended = build(trainer, reg, { ...batch });
    const plan = planFrom(recommended, sources(reg));
    const effective = fal ? 1 : b;
    // the guide's steps range (1,500-2,500 at batch 1) bounds the images trained: 100 passes x 20 images
    const imageSteps = Math.min(2500, Math.max(1500, 100 * IMAGES));
    expect(plan.steps).toBe(Math.ceil(imageSteps / (effective * share) - 1e-6));
    const said = rules(recommended, reg).map((f) => f.rule);
    expect(said).not.toContain("passes-per-image-out-of-range");
    expect(said).not.toContain("steps-out-of-range");
    // passes_per_image: 100 trains each training image ~100 times; the same steps beside it agree
    const byPasses = build(trainer, reg, { ...batch, passes_per_image: 100 });
    const p = planFrom(byPasses, sources(reg));
    expect(p.passesPerImage).toBeGreaterThanOrEqual(100);
    expect(p.passesPerImage).toBeLessThan(100 + effective);
    expect(rules(build(trainer, reg, { ...batch, passes_per_image: 100, steps: p.steps }), reg).map((f) => f.rule)).not.toContain("steps-passes-mismatch");
  });
});
