import { parse as parseToml } from "smol-toml";
import { describe, expect, it } from "vitest";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { FAL_TRAINER_ENDPOINTS } from "@loraspec/core/compile/fal/fal-endpoints.js";
import { compileFal } from "@loraspec/core/compile/fal/compile-fal.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { PLAN_SETTINGS, type PlanSetting } from "@loraspec/core/compile/trainer-receives.js";
import type { Contract, ContractInput } from "@loraspec/core/contract/schema.js";
import { planRun, type Plan } from "@loraspec/core/plan/plan-run.js";
import { makeContract, PATHS } from "../../core/test/compile/contract-fixture.js";
import { planRows } from "../src/commands/plan.js";
import { planSummary } from "../src/commands/train.js";

/**
 * `loraspec plan` and `loraspec train` print a setting iff the trainer's compiled config carries it: over every
 * trainer (each fal endpoint on its own base) x every plan setting. The contract sets a value no default has
 * (rank 44, alpha 22, batch 3 x 7, 832 px, LR 3.7e-4, save every 137), the compiler writes its files, and a
 * setting is carried when one of the compiled values is it. fal's endpoints take steps, the trigger and (some) a
 * learning rate: VRAM, rank/alpha, batch and the rest are theirs to pick, and never printed for them.
 */
const HP = { learning_rate: 3.7e-4, steps: 1234, rank: 44, alpha: 22, batch_size: 3, gradient_accumulation: 7, save_every: 137 };
const RESOLUTION = 832;

/** Every value the compiled config holds, with its key path. */
function leaves(value: unknown, path = ""): Array<[string, unknown]> {
  if (Array.isArray(value)) return value.flatMap((v, i) => leaves(v, `${path}[${i}]`));
  if (value && typeof value === "object") return Object.entries(value).flatMap(([k, v]) => leaves(v, path ? `${path}.${k}` : k));
  return [[path, value]];
}

function compiled(c: Contract, plan: Plan): Array<[string, unknown]> {
  const name = c.trainer.name;
  if (name === "kohya") {
    const k = compileKohya(c, plan, PATHS);
    return [...leaves(parseToml(k.argsToml)), ...leaves(parseToml(k.datasetToml)), ...leaves(k.command)];
  }
  if (name === "ai-toolkit") return leaves(compileAiToolkit(c, plan, PATHS).job);
  if (name === "diffusers") return leaves(compileDiffusers(c, plan, PATHS).request);
  return leaves(compileFal(c, plan, { zipUrl: "https://example.com/d.zip" }).input);
}

/** Whether the compiled config carries each plan setting. */
function carries(all: Array<[string, unknown]>, plan: Plan): Record<PlanSetting, boolean> {
  const has = (v: unknown) => all.some(([, x]) => x === v);
  const key = (re: RegExp) => all.some(([k]) => re.test(k));
  const batch = has(HP.batch_size) && has(HP.gradient_accumulation);
  const resolution = has(RESOLUTION);
  return {
    learningRate: has(HP.learning_rate),
    rank: has(HP.rank) && has(HP.alpha),
    batch,
    repeats: all.some(([k, x]) => /repeats/.test(k) && x === plan.repeats),
    resolution,
    checkpoints: has(HP.save_every),
    // the VRAM estimate and per-GPU times are made of the batch and resolution the trainer runs on
    gpu: batch && resolution,
    networkTargets: key(/network|targets/),
    trainSettings: key(/gradient_checkpointing/),
  };
}

/** Whether `loraspec plan`'s rows (and train's summary, where it names the setting) show each setting. */
function printed(plan: Plan): { plan: Record<PlanSetting, boolean>; train: Partial<Record<PlanSetting, boolean>> } {
  const rows = planRows(plan);
  const labels = new Set(rows.map((r) => r[0]));
  const images = rows.find((r) => r[0] === "images")![1]!;
  const summary = planSummary(plan).replace(/\u001b\[[0-9;]*m/g, "");
  return {
    plan: {
      learningRate: labels.has("learning rate"),
      rank: labels.has("rank / alpha"),
      batch: labels.has("batch"),
      repeats: labels.has("repeats x epochs"),
      resolution: images.includes(`at ${plan.resolution} px`),
      checkpoints: labels.has("checkpoints"),
      gpu: labels.has("VRAM (peak)"),
      networkTargets: labels.has("network targets"),
      trainSettings: plan.trainSettings.choices.length > 0 && plan.trainSettings.choices.every((c) => labels.has(c.setting)),
    },
    train: {
      learningRate: / LR /.test(summary),
      rank: / rank \d+\/\d+/.test(summary),
      batch: / batch \d+/.test(summary),
      resolution: summary.includes(`at ${plan.resolution} px`),
      gpu: /VRAM ~/.test(summary),
    },
  };
}

const cases: Array<{ label: string; c: Contract }> = [
  ...(["diffusers", "kohya", "ai-toolkit"] as const).flatMap((trainer) =>
    (["sdxl", "flux1-dev"] as const).map((base) => ({
      label: `${trainer} ${base}`,
      c: makeContract({
        base,
        target: "character",
        trainer: trainer === "diffusers" ? "kohya" : trainer,
        path: "/models/base",
        overrides: { base: { model: base, path: "/models/base", quantize: "none" }, hyperparameters: HP, dataset: { path: "./dataset", expected_images: 20, resolution: RESOLUTION }, ...(trainer === "diffusers" ? { trainer: { name: "diffusers" } } : {}) } as Partial<ContractInput>,
      }),
    })),
  ),
  ...FAL_TRAINER_ENDPOINTS.map((e) => ({
    label: `fal ${e.endpoint}`,
    c: makeContract({ base: e.base, target: "character", trainer: "fal", overrides: { trainer: { name: "fal", endpoint: e.endpoint }, hyperparameters: HP, dataset: { path: "./dataset", expected_images: 20, resolution: RESOLUTION } } }),
  })),
];

describe("plan and train print a setting iff the trainer's compiled config carries it", () => {
  it.each(cases)("$label", ({ c }) => {
    const plan = planRun(c);
    const carried = carries(compiled(c, plan), plan);
    const shown = printed(plan);
    expect(Object.keys(carried).sort()).toEqual([...PLAN_SETTINGS].sort());
    expect(shown.plan).toEqual(carried);
    expect(plan.receives.settings).toEqual(carried);
    for (const [setting, value] of Object.entries(shown.train)) expect([setting, value]).toEqual([setting, carried[setting as PlanSetting]]);
  });

  it("fal: no VRAM, rank/alpha, batch or GPU table; the LR only where the endpoint takes one", () => {
    for (const e of FAL_TRAINER_ENDPOINTS) {
      const plan = planRun(makeContract({ base: e.base, target: "character", trainer: "fal", overrides: { trainer: { name: "fal", endpoint: e.endpoint } } }));
      const labels = planRows(plan).map((r) => r[0]);
      expect(labels).not.toContain("VRAM (peak)");
      expect(labels).not.toContain("rank / alpha");
      expect(labels).not.toContain("batch");
      expect(labels.includes("learning rate")).toBe(e.takesLearningRate);
      expect(labels).toContain("not sent");
    }
  });
});
