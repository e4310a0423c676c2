import { describe, expect, it } from "vitest";
import { aiToolkitBucket } from "@loraspec/core/plan/ai-toolkit-bucket.js";
import { resolveBuckets } from "@loraspec/core/plan/buckets.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { getTrainerSide, TRAINER_SIDES } from "@loraspec/core/knowledge/trainer-resolution.js";
import { getBaseModel, BASE_MODEL_IDS, type BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { contract, dataset } from "../lint/helpers.js";

// Images of several aspects and sizes (ai-toolkit does not upscale: an image under resolution² keeps its area).
const SIZES = [
  { width: 1024, height: 1024 },
  { width: 1536, height: 1024 },
  { width: 832, height: 1216 },
  { width: 3000, height: 2000 },
  { width: 640, height: 640 },
  { width: 2048, height: 900 },
];
const scan = dataset(SIZES.length * 4, (i) => SIZES[i % SIZES.length]!);
const STEPS = [32, 64, 128];

/** Every ai-toolkit base with a record: its FLUX.1, FLUX.2, SDXL, Qwen-Image and Z-Image models. */
const AT_BASES = BASE_MODEL_IDS.filter((id) => getTrainerSide("ai-toolkit", getBaseModel(id)!.family));

const at = (base: BaseModelId, step: number, resolutions: number[] = []) =>
  contract({ base: { model: base }, trainer: { name: "ai-toolkit" }, dataset: { path: "./dataset", resolution: 1024, aspect: "buckets", buckets: { step, max_side: 2048, ...(resolutions.length ? { resolutions } : {}) } } });

describe("the plan's bucket shapes are the ones the trainer trains", () => {
  it("every ai-toolkit family with a bucketed record is planned (the table is not empty)", () => {
    expect(AT_BASES.length).toBeGreaterThanOrEqual(TRAINER_SIDES.filter((r) => r.trainer === "ai-toolkit").length);
  });

  it.each(AT_BASES)("ai-toolkit %s: shapes are ai-toolkit's picker on the images' sizes, on the model's divisibility, whatever dataset.buckets.step says", (base) => {
    const d = (getTrainerSide("ai-toolkit", getBaseModel(base)!.family)!.bucketed as { divisibility: number }).divisibility;
    for (const resolutions of [[], [512, 768]]) {
      const plans = STEPS.map((step) => planRun(at(base, step, resolutions), scan));
      const trained = [...resolutions, 1024].flatMap((r) => SIZES.map((s) => ({ resolution: r, ...aiToolkitBucket(s.width, s.height, r, d) })));
      const expected = [...new Map(trained.map((b) => [`${b.resolution}:${b.width}x${b.height}`, b])).values()].sort((a, b) => a.resolution - b.resolution || a.width - b.width || a.height - b.height);
      for (const p of plans) {
        expect(p.buckets?.picker).toBe("ai-toolkit");
        expect(p.buckets?.buckets).toEqual(expected);
        for (const b of p.buckets!.buckets) expect([b.width % d, b.height % d, b.width * b.height <= b.resolution ** 2]).toEqual([0, 0, true]);
      }
      // the step changes nothing the plan estimates
      const [first, ...rest] = plans;
      for (const p of rest) {
        expect(p.vram.totalGb).toBe(first!.vram.totalGb);
        expect(p.walltime.map((w) => w.secondsPerStep)).toEqual(first!.walltime.map((w) => w.secondsPerStep));
      }
      // timed at the mean of what is trained: under resolution² (the 640 px images are not upscaled)
      const mean = trained.reduce((s, b) => s + b.width * b.height, 0) / trained.length;
      expect(first!.buckets!.meanArea).toBeCloseTo(mean, 6);
    }
  });

  it("ai-toolkit without a scan plans square images of at least the resolution: SDXL at 1000 trains about 992x1008", () => {
    const p = planRun(contract({ base: { model: "sdxl" }, trainer: { name: "ai-toolkit" }, dataset: { path: "./dataset", resolution: 1000, aspect: "buckets" } }));
    expect(p.buckets?.buckets.map((b) => [b.width, b.height])).toEqual([[992, 1008]]);
  });

  it("ai-toolkit's smaller shapes make the step shorter than the same contract at square 1024 crops", () => {
    const small = dataset(20, () => ({ width: 640, height: 640 }));
    const bucketed = planRun(at("flux1-dev", 64), small);
    const square = planRun(contract({ base: { model: "flux1-dev" }, trainer: { name: "ai-toolkit" }, dataset: { path: "./dataset", resolution: 1024, aspect: "square" } }), small);
    const h200 = (p: typeof bucketed) => p.walltime.find((w) => w.gpu === "h200")!.secondsPerStep;
    expect(h200(bucketed)).toBeLessThan(h200(square));
    expect(bucketed.vram.totalGb).toBeLessThan(square.vram.totalGb);
  });

  it.each<[string, "kohya" | "diffusers"]>([
    ["Kohya", "kohya"],
    ["the built-in trainer", "diffusers"],
  ])("%s: the plan's shapes are core's set (resolveBuckets), which follows dataset.buckets.step", (_name, trainer) => {
    const c = (step: number) => contract({ base: { model: "sdxl" }, trainer: { name: trainer }, dataset: { path: "./dataset", resolution: 1024, aspect: "buckets", buckets: { step } } });
    const [a, b] = [planRun(c(64), scan), planRun(c(128), scan)];
    expect(a.buckets?.picker).toBe("set");
    expect(a.buckets?.buckets).toEqual(resolveBuckets(c(64), 1024).buckets);
    expect(b.buckets?.buckets).toEqual(resolveBuckets(c(128), 1024).buckets);
    expect(a.buckets?.buckets).not.toEqual(b.buckets?.buckets);
  });
});
