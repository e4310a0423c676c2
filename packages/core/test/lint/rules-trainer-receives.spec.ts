import { describe, expect, it } from "vitest";
import { FAL_TRAINER_ENDPOINTS } from "@loraspec/core/compile/fal/fal-endpoints.js";
import { receivesSetting, RULE_SETTINGS, trainerReceives } from "@loraspec/core/compile/trainer-receives.js";
import { ContractSchema, type Contract, type ContractInput } from "@loraspec/core/contract/schema.js";
import type { DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import type { BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { getCompatibility } from "@loraspec/core/knowledge/trainers.js";
import { RULES } from "@loraspec/core/lint/finding.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { dataset } from "./helpers.js";

/**
 * Every rule that judges one of the plan's settings x every trainer: the rule fires only where the trainer is handed
 * that setting, as compile/trainer-receives.ts says (RULE_SETTINGS and trainerReceives, never a list here). fal's
 * hosted endpoints pick their own resolution, GPU, batch and checkpoints, so an image below the base's native side,
 * a VRAM ceiling, a save_every or passes per image judge nothing they do, nor does the failure path (a fal job is only
 * polled: no NaN stop, no OOM fallback); an endpoint that takes a learning rate is
 * still held to the LR range. Each rule's provocation fires on some trainer handed the setting, on the same base as
 * a fal endpoint that is not, so a quiet fal cell is the gate and not a provocation that missed.
 */
type Provocation = { patch: (c: ContractInput) => ContractInput; dataset?: DatasetSummary };
const hp = (c: ContractInput, over: Record<string, unknown>): ContractInput => ({ ...c, hyperparameters: { ...c.hyperparameters, ...over } as ContractInput["hyperparameters"] });
const ds = (c: ContractInput, over: Record<string, unknown>): ContractInput => ({ ...c, dataset: { ...c.dataset, ...over } as ContractInput["dataset"] });

const PROVOKE: Record<string, Provocation> = {
  "lr-sdxl-on-flux": { patch: (c) => hp(c, { learning_rate: 5e-3 }) },
  "lr-out-of-range": { patch: (c) => hp(c, { learning_rate: 1e-6 }) },
  "passes-per-image-out-of-range": { patch: (c) => hp(c, { batch_size: 8, steps: 2000 }) },
  "steps-passes-mismatch": { patch: (c) => hp(c, { steps: 1000, passes_per_image: 10 }) },
  "image-below-native": { patch: (c) => c, dataset: dataset(20, () => ({ width: 256, height: 256 })) },
  "resolution-off-step": { patch: (c) => ds(c, { resolution: 1000 }) },
  "resolution-rounded": { patch: (c) => ds(c, { resolution: 1030 }) },
  "buckets-invalid": { patch: (c) => ds(c, { aspect: "buckets", resolution: 1024, buckets: { min_side: 256, max_side: 512 } }) },
  "vram-below-profile": { patch: (c) => ({ ...c, limits: { ...c.limits, vram_ceiling_gb: 2 } }) },
  "walltime-over-limit": { patch: (c) => ({ ...c, limits: { ...c.limits, max_walltime_hours: 0.001 } }) },
  "no-save-every": { patch: (c) => hp(c, { save_every: undefined }) },
  "save-every-over-steps": { patch: (c) => hp(c, { steps: 1000, save_every: 5000 }) },
  "failure-path-unset": { patch: (c) => ({ ...c, failure: {} }) },
  "failure-continue-on-divergence": { patch: (c) => ({ ...c, failure: { on_divergence: "continue", on_oom: "fail" } }) },
};

const LOCAL = ["diffusers", "kohya", "ai-toolkit"] as const;
const BASES = [...new Set<BaseModelId>(["sdxl", ...FAL_TRAINER_ENDPOINTS.map((e) => e.base)])];

function input(base: BaseModelId, trainer: (typeof LOCAL)[number] | { endpoint: string }): ContractInput {
  const fal = typeof trainer === "object";
  return {
    version: 1,
    name: "txcl-character",
    base: { model: base },
    trainer: fal ? { name: "fal", endpoint: trainer.endpoint } : { name: trainer },
    hardware: fal ? { kind: "fal" } : { kind: "local", gpu: "RTX 4090", vram_gb: 80 },
    target: "character",
    dataset: { path: "./dataset", expected_images: 20 },
    captions: { style: base === "sdxl" ? "tags" : "natural" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: base === "sdxl" ? 1e-4 : 1e-4, steps: 1500, save_every: 250 },
    failure: { on_divergence: "stop", on_oom: "fail" },
  };
}

const cells = BASES.flatMap((base) => [
  ...LOCAL.filter((t) => {
    const rec = getCompatibility(t, base);
    return rec?.supported && rec.compiles !== false;
  }).map((t) => ({ base, label: `${t} on ${base}`, make: () => input(base, t) })),
  ...FAL_TRAINER_ENDPOINTS.filter((e) => e.base === base).map((e) => ({ base, label: `fal ${e.endpoint}`, make: () => input(base, { endpoint: e.endpoint }) })),
]);

function fires(rule: string, make: () => ContractInput): { fired: boolean; c: Contract } {
  const p = PROVOKE[rule]!;
  const c = ContractSchema.parse(p.patch(make()));
  return { fired: lintContract(c, { dataset: p.dataset }).some((f) => f.rule === rule), c };
}

describe("a rule about a setting fires only where the trainer receives it (compile/trainer-receives.ts)", () => {
  it("every rule listed is a check rule, and has a provocation here", () => {
    const ids = new Set(RULES.map((r) => r.id));
    for (const rule of Object.keys(RULE_SETTINGS)) {
      expect(ids.has(rule), rule).toBe(true);
      expect(PROVOKE[rule], rule).toBeDefined();
    }
  });

  const table = Object.entries(RULE_SETTINGS).flatMap(([rule, setting]) => cells.map((cell) => ({ rule, setting, ...cell })));
  it.each(table)("$rule x $label", ({ rule, setting, make }) => {
    const { fired, c } = fires(rule, make);
    const received = receivesSetting(trainerReceives(c), setting);
    if (!received) expect(fired, `${rule} fired, but ${c.trainer.name} is not handed ${setting}`).toBe(false);
  });

  it.each(Object.keys(RULE_SETTINGS))("%s: provoked where the setting is received, on a base where some fal endpoint is not handed it", (rule) => {
    const setting = RULE_SETTINGS[rule]!;
    const quietFal = cells.filter((cell) => cell.label.startsWith("fal ") && !receivesSetting(trainerReceives(ContractSchema.parse(cell.make())), setting));
    const firing = cells.filter((cell) => !cell.label.startsWith("fal ") && fires(rule, cell.make).fired);
    expect(firing.length, `${rule} fires on no local trainer`).toBeGreaterThan(0);
    if (quietFal.length > 0) expect(quietFal.some((q) => firing.some((f) => f.base === q.base)), `${rule}: no local trainer fires on a base of a fal endpoint`).toBe(true);
  });

  it("a trainer not handed the batch is planned at batch 1 (plan/effective-batch.ts): fal's batch_size, accumulation and GPUs are not sent", () => {
    for (const cell of cells) {
      const c = ContractSchema.parse(hp(cell.make(), { steps: undefined, passes_per_image: 100, batch_size: 4, gradient_accumulation: 2 }));
      const plan = planRun(c);
      const handed = trainerReceives(c).settings.batch;
      expect([cell.label, plan.effectiveBatch], cell.label).toEqual([cell.label, handed ? 8 : 1]);
      expect(plan.steps, cell.label).toBe(Math.ceil((100 * 20) / plan.effectiveBatch));
    }
  });

  it("a fal endpoint that takes a learning rate is still held to the LR range", () => {
    const lr = FAL_TRAINER_ENDPOINTS.filter((e) => e.takesLearningRate);
    expect(lr.length).toBeGreaterThan(0);
    for (const e of lr) expect(fires("lr-out-of-range", () => input(e.base, { endpoint: e.endpoint })).fired, e.endpoint).toBe(true);
  });
});
