import { describe, expect, it } from "vitest";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { RULES } from "@loraspec/core/lint/finding.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { effectiveBatchOf, effectiveBatchText } from "@loraspec/core/plan/effective-batch.js";
import { getPassesPerImage, PASSES_PER_IMAGE_TOLERANCE } from "@loraspec/core/knowledge/recipes.js";
import type { ContractInput } from "@loraspec/core/contract/schema.js";
import { contract, dataset, GOOD } from "./helpers.js";

/**
 * Passes per image count every image an optimizer step trains on: batch x accumulation x GPUs (one home,
 * plan/effective-batch.ts, read by the plan and by lint). batch_size 32 on a 20-image SDXL Kohya contract at
 * 2,000 steps planned 3,200 passes per image with check silent. Table: trainer x (batch, accumulation, GPUs).
 */
const TRAINERS: Array<[string, Partial<ContractInput>]> = [
  ["kohya sdxl", { base: { model: "sdxl" }, trainer: { name: "kohya", version: "v0.10.1" }, hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250 } }],
  ["ai-toolkit flux1-dev", {}],
  ["built-in flux1-dev", { trainer: { name: "diffusers" } }],
];

const SETTINGS: Array<[string, { batch_size?: number; gradient_accumulation?: number }, number, boolean]> = [
  ["batch 1", {}, 1, false],
  ["batch 32", { batch_size: 32 }, 1, true],
  ["gradient_accumulation 4", { gradient_accumulation: 4 }, 1, true],
  ["2 GPUs x batch 2", { batch_size: 2 }, 2, true],
  ["batch 2 x accumulation 2 x 2 GPUs", { batch_size: 2, gradient_accumulation: 2 }, 2, true],
];

function build(trainer: Partial<ContractInput>, hp: { batch_size?: number; gradient_accumulation?: number }, gpus: number, extra: Record<string, unknown> = {}) {
  const patch = trainer as Record<string, unknown>;
  const base = { ...GOOD, ...patch, hyperparameters: { ...GOOD.hyperparameters, ...(patch.hyperparameters as object), ...hp, ...extra }, hardware: { ...GOOD.hardware, gpus, vram_gb: 80 }, limits: { vram_ceiling_gb: 80 } } as ContractInput;
  return contract({}, base);
}

describe("passes per image count batch x accumulation x GPUs", () => {
  const cases = TRAINERS.flatMap(([t, trainer]) => SETTINGS.map(([label, hp, gpus, warns]) => [t, label, trainer, hp, gpus, warns] as const));
  it.each(cases)("%s, %s", (_t, _label, trainer, hp, gpus, warns) => {
    const c = build(trainer, hp, gpus);
    const plan = planRun(c, dataset(20));
    const b = effectiveBatchOf(c);
    expect(b.images).toBe((hp.batch_size ?? 1) * (hp.gradient_accumulation ?? 1) * gpus);
    expect(plan.effectiveBatch).toBe(b.images);
    expect(plan.passesPerImage).toBe((2000 * b.images) / 20);
    const finding = lintContract(c, { dataset: dataset(20) }).find((f) => f.rule === "passes-per-image-out-of-range");
    expect(Boolean(finding)).toBe(warns);
    if (finding) {
      expect(finding.message).toContain(String(plan.passesPerImage));
      expect(finding.message).toContain(effectiveBatchText(b));
      if (b.accumulation > 1 || b.gpus > 1) expect(finding.message).toContain(`= ${b.images} images per step`);
      // following the fix (its steps) clears the finding
      const steps = Number(/steps to about (\d+)/.exec(finding.fix)![1]);
      const fixed = build(trainer, hp, gpus, { steps, save_every: Math.max(1, Math.floor(steps / 2)) });
      // nor does the steps range (the guide's, at batch 1) warn about the fewer steps
      expect(lintContract(fixed, { dataset: dataset(20) }).map((f) => f.rule)).not.toEqual(expect.arrayContaining(["passes-per-image-out-of-range"]));
      expect(lintContract(fixed, { dataset: dataset(20) }).map((f) => f.rule)).not.toContain("steps-out-of-range");
      // as does passes_per_image instead of steps
      const byPasses = build(trainer, hp, gpus, { steps: undefined, passes_per_image: 100, save_every: undefined });
      expect(lintContract(byPasses, { dataset: dataset(20) }).map((f) => f.rule)).not.toContain("passes-per-image-out-of-range");
    }
  });

  it("the range is a sourced knowledge record, derived from the guide's steps and dataset sizes", () => {
    const r = getPassesPerImage("character", "sdxl");
    expect(r.range).toEqual({ min: 50, max: 167 });
    expect(r.source).toMatch(/1,500-2,500.*15-30/);
    expect(r.asOf).toMatch(/^\d{4}-\d\d-\d\d$/);
    expect(PASSES_PER_IMAGE_TOLERANCE.source.length).toBeGreaterThan(10);
    expect(RULES.map((x) => x.id)).toEqual(expect.arrayContaining(["passes-per-image-out-of-range", "warmup-over-steps"]));
  });
});

describe("warm-up as long as the run", () => {
  const cases = TRAINERS.flatMap(([t, trainer]) =>
    ([
      [5000, true],
      [2000, true],
      [1999, false],
      [100, false],
    ] as const).map(([warmup, error]) => [t, warmup, error, trainer] as const),
  );
  it.each(cases)("%s, warmup_steps %d of 2000", (_t, warmup, error, trainer) => {
    const c = build(trainer, {}, 1, { warmup_steps: warmup, lr_scheduler: "cosine" });
    const finding = lintContract(c, { dataset: dataset(20) }).find((f) => f.rule === "warmup-over-steps");
    expect(Boolean(finding)).toBe(error);
    if (finding) {
      expect(finding).toMatchObject({ severity: "error", field: "hyperparameters.warmup_steps" });
      const suggested = Number(/e\.g\. (\d+)/.exec(finding.fix)![1]);
      const fixed = build(trainer, {}, 1, { warmup_steps: suggested, lr_scheduler: "cosine" });
      expect(lintContract(fixed, { dataset: dataset(20) }).map((f) => f.rule)).not.toContain("warmup-over-steps");
    }
  });
});
