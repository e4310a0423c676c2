import { describe, expect, it } from "vitest";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml } from "yaml";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { compileFal } from "@loraspec/core/compile/fal/compile-fal.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import type { Contract, ContractInput } from "@loraspec/core/contract/schema.js";
import { TRAINER_IDS, type TrainerId } from "@loraspec/core/contract/ids.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { TRAINER_EPOCHS } from "@loraspec/core/knowledge/trainer-epochs.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { trainingShapes } from "@loraspec/core/plan/trainer-buckets.js";
import { trainingResolutions } from "@loraspec/core/plan/training-resolutions.js";
import { meanTrainingArea } from "@loraspec/core/plan/walltime.js";
import { makeContract, PATHS } from "../compile/contract-fixture.js";

/**
 * "The resolutions a run trains at" has one home (plan/training-resolutions.ts). For every trainer x
 * aspect x 1-3 resolutions (some off the trainer's step: 1000, 600; unsorted; a duplicate), the list
 * each consumer uses is the list the compiled config carries, read as the trainer reads it: Kohya's
 * [[datasets]] resolutions, ai-toolkit's datasets' resolution list, the built-in trainer's bucket
 * resolutions. Consumers: plan/epoch.ts (copies per epoch), plan/walltime.ts meanTrainingArea (the
 * timed pixel count), plan/trainer-buckets.ts trainingShapes (the shapes' resolutions and mean area).
 */
const BASES = { diffusers: "flux1-dev", kohya: "sdxl", "ai-toolkit": "flux1-dev", fal: "flux1-dev" } as const;

function contractFor(trainer: TrainerId, dataset: Partial<ContractInput["dataset"]>): Contract {
  return makeContract({
    base: BASES[trainer],
    target: "character",
    trainer: trainer === "diffusers" ? "kohya" : trainer,
    path: trainer === "kohya" || trainer === "diffusers" ? "/models/base" : undefined,
    overrides: { ...(trainer === "diffusers" ? { trainer: { name: "diffusers" } } : {}), dataset: { path: "./dataset", expected_images: 20, ...dataset } },
  });
}

/** The training resolutions the compiled config carries, as its trainer reads them (undefined: it sends none). */
function compiledResolutions(c: Contract, plan: ReturnType<typeof planRun>): number[] | undefined {
  const compilePlan = { steps: plan.steps, repeats: plan.repeats, learningRate: plan.learningRate, resolution: plan.resolution };
  if (c.trainer.name === "kohya") {
    const toml = parseToml(compileKohya(c, compilePlan, PATHS).datasetToml) as { datasets: Array<{ resolution: number }> };
    return toml.datasets.map((d) => d.resolution);
  }
  if (c.trainer.name === "ai-toolkit") {
    const job = parseYaml(compileAiToolkit(c, compilePlan, PATHS).jobYaml) as { config: { process: Array<{ datasets: Array<{ resolution: number | number[]; is_reg?: boolean }> }> } };
    const lists = job.config.process[0]!.datasets.map((d) => (Array.isArray(d.resolution) ? d.resolution : [d.resolution]));
    // the reg dataset (if any) trains at the same list
    for (const l of lists) expect(l).toEqual(lists[0]);
    return lists[0];
  }
  if (c.trainer.name === "diffusers") {
    const request = JSON.parse(JSON.stringify(compileDiffusers(c, compilePlan, PATHS).request)) as { resolution: number; buckets: Array<{ resolution: number }> };
    expect(request.resolution).toBe(plan.resolution);
    return [...new Set(request.buckets.map((b) => b.resolution))];
  }
  const input = compileFal(c, compilePlan, { zipUrl: "https://example.com/d.zip" }).input as Record<string, unknown>;
  expect(Object.keys(input).filter((k) => /resolution/i.test(k))).toEqual([]);
  return undefined;
}

const DATASETS: Array<[string, Partial<ContractInput["dataset"]>]> = [
  ["square 1024", { aspect: "square", resolution: 1024 }],
  ["square 1000 (off step)", { aspect: "square", resolution: 1000 }],
  ["buckets 1024", { aspect: "buckets", resolution: 1024 }],
  ["buckets 1000", { aspect: "buckets", resolution: 1000 }],
  ["buckets 1024 + 768", { aspect: "buckets", resolution: 1024, buckets: { resolutions: [768] } }],
  ["buckets 1000 + 600", { aspect: "buckets", resolution: 1000, buckets: { resolutions: [600] } }],
  ["buckets 1024 + 768, 512 (unsorted)", { aspect: "buckets", resolution: 1024, buckets: { resolutions: [768, 512] } }],
  ["buckets 1024 + 1000, 512 (off step)", { aspect: "buckets", resolution: 1024, buckets: { resolutions: [1000, 512] } }],
  ["buckets 1024 + 1024, 768 (duplicate)", { aspect: "buckets", resolution: 1024, buckets: { resolutions: [1024, 768] } }],
  ["buckets, base's native + 512", { aspect: "buckets", buckets: { resolutions: [512] } }],
];

describe("the training resolutions every consumer uses = the compiled config's", () => {
  const cases = TRAINER_IDS.flatMap((t) => DATASETS.map(([label, d]) => [t, label, d] as const));
  it.each(cases)("%s, %s", (trainer, _label, dataset) => {
    const c = contractFor(trainer, dataset);
    const plan = planRun(c);
    const list = trainingResolutions(c, plan.resolution);
    const compiled = compiledResolutions(c, plan);
    const mean = (rs: number[]) => rs.reduce((s, r) => s + r * r, 0) / rs.length;
    if (compiled === undefined) {
      // fal is sent no resolution list: one copy per epoch
      expect(TRAINER_EPOCHS[trainer].perResolution).toBe(false);
      expect(plan.epochResolutions).toBe(1);
      return;
    }
    expect(list).toEqual(compiled);
    expect(plan.epochResolutions).toBe(TRAINER_EPOCHS[trainer].perResolution ? compiled.length : 1);
    expect(meanTrainingArea(c, plan.resolution)).toBe(mean(compiled));
    const shapes = trainingShapes(c, getBaseModel(c.base.model)!, plan.resolution);
    expect([...new Set(shapes.buckets.map((b) => b.resolution))]).toEqual(compiled);
    if (shapes.picker === "set") expect(shapes.meanArea).toBe(mean(compiled));
  });
});
