import { describe, expect, it } from "vitest";
import { assignBucket, bucketShapes, makeBuckets, resolveBuckets, type Bucket } from "@loraspec/core/plan/buckets.js";
import { resolveTrainSettings } from "@loraspec/core/plan/train-settings.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { ContractSchema } from "@loraspec/core/contract/schema.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { contract, dataset } from "../lint/helpers.js";
import { PATHS } from "../compile/contract-fixture.js";
import { prng as rng } from "../../../../scripts/lib/prng.mjs";

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

describe("makeBuckets / assignBucket (properties over 150 seeded settings)", () => {
  const r = rng(21);
  const cases = Array.from({ length: 150 }, () => {
    const step = pick(r, [32, 64, 128]);
    const minSide = step * (1 + Math.floor(r() * 8));
    const maxSide = minSide + step * Math.floor(r() * 40);
    const resolution = minSide + Math.floor(r() * (maxSide - minSide + 1));
    return { step, minSide, maxSide, resolution };
  });

  it("every bucket's sides are multiples of step within [min, max], its area at most resolution², and the set has no duplicates", () => {
    for (const { step, minSide, maxSide, resolution } of cases) {
      const buckets = makeBuckets(resolution, minSide, maxSide, step);
      expect(buckets.length, JSON.stringify({ step, minSide, maxSide, resolution })).toBeGreaterThan(0);
      for (const b of buckets) {
        expect(b.width % step).toBe(0);
        expect(b.height % step).toBe(0);
        expect(Math.min(b.width, b.height)).toBeGreaterThanOrEqual(minSide);
        expect(Math.max(b.width, b.height)).toBeLessThanOrEqual(maxSide);
        expect(b.width * b.height).toBeLessThanOrEqual(resolution * resolution);
        expect(b.resolution).toBe(resolution);
      }
      expect(new Set(buckets.map((b) => `${b.width}x${b.height}`)).size).toBe(buckets.length);
      // transposes come in pairs: a portrait bucket for every landscape one
      for (const b of buckets) expect(buckets.some((o) => o.width === b.height && o.height === b.width)).toBe(true);
    }
  });

  it("every image lands in the bucket nearest its aspect", () => {
    for (const { step, minSide, maxSide, resolution } of cases) {
      const buckets = makeBuckets(resolution, minSide, maxSide, step);
      for (let i = 0; i < 10; i++) {
        const w = 1 + Math.floor(r() * 4000);
        const h = 1 + Math.floor(r() * 4000);
        const got = assignBucket(w, h, buckets);
        const err = (b: Bucket) => Math.abs(b.width / b.height - w / h);
        expect(buckets).toContain(got);
        for (const b of buckets) expect(err(got)).toBeLessThanOrEqual(err(b));
      }
    }
  });

  it("sd-scripts' defaults at 1024: the square, then portrait and landscape pairs; a portrait lands portrait, a landscape lands landscape", () => {
    const buckets = makeBuckets(1024, 256, 1024, 64);
    expect(buckets).toContainEqual({ resolution: 1024, width: 1024, height: 1024 });
    expect(buckets).toContainEqual({ resolution: 1024, width: 768, height: 1024 });
    expect(buckets).toContainEqual({ resolution: 1024, width: 1024, height: 768 });
    expect(buckets.length).toBe(25);
    const portrait = assignBucket(600, 900, buckets);
    const landscape = assignBucket(900, 600, buckets);
    expect(portrait.height).toBeGreaterThan(portrait.width);
    expect(landscape).toEqual({ ...portrait, width: portrait.height, height: portrait.width });
    expect(assignBucket(500, 500, buckets)).toEqual({ resolution: 1024, width: 1024, height: 1024 });
  });

  // The worker assigns the same way (worker/tests/test_buckets.py holds the same table).
  it.each([
    [600, 900, 384, 640],
    [900, 600, 640, 384],
    [1000, 1000, 512, 512],
    [300, 1200, 256, 1024],
    [2000, 1000, 704, 320],
  ])("%i x %i lands in %i x %i of the 512 set (min 256, max 1024, step 64)", (w, h, bw, bh) => {
    const got = assignBucket(w, h, makeBuckets(512, 256, 1024, 64));
    expect([got.width, got.height]).toEqual([bw, bh]);
  });
});

describe("resolveBuckets (the request's bucket set)", () => {
  const bucketed = (buckets: Record<string, unknown> = {}, resolution?: number) =>
    contract({ dataset: { path: "./dataset", aspect: "buckets", buckets, ...(resolution ? { resolution } : {}) } });

  it("square aspect is one square bucket (the center crop)", () => {
    expect(resolveBuckets(contract(), 1024).buckets).toEqual([{ resolution: 1024, width: 1024, height: 1024 }]);
  });

  it("multi-resolution: each resolution's own set, ascending, dataset.resolution last", () => {
    const plan = resolveBuckets(bucketed({ resolutions: [768, 512] }), 1024);
    expect(plan.resolutions).toEqual([512, 768, 1024]);
    for (const r of plan.resolutions) {
      const group = plan.buckets.filter((b) => b.resolution === r);
      expect(group).toEqual(makeBuckets(r, 256, 1024, 64));
    }
    expect(Math.max(...plan.buckets.map((b) => b.width * b.height))).toBeLessThanOrEqual(1024 * 1024);
  });

  it("max_side defaults to the resolution when that is above Kohya's 1024", () => {
    expect(resolveBuckets(bucketed({}, 1328), 1328).maxSide).toBe(1344);
  });

  it.each([
    [{ min_side: 300 }, 1024, "dataset.buckets.min_side"],
    [{ max_side: 1000 }, 1024, "dataset.buckets.max_side"],
    [{ max_side: 768 }, 1024, "dataset.buckets.max_side"],
    [{ min_side: 1088, max_side: 2048 }, 1024, "dataset.buckets.min_side"],
    [{ resolutions: [1280] }, 1024, "dataset.buckets.resolutions"],
  ])("refuses %j at %i naming %s", (buckets, resolution, field) => {
    try {
      resolveBuckets(bucketed(buckets), resolution);
      expect.unreachable();
    } catch (e) {
      expect(isLoraspecError(e) && e.code === "E_CONTRACT_INVALID" && e.field).toBe(field);
    }
  });

  it("the schema refuses dataset.buckets under aspect: square, and a step that is not a multiple of 32", () => {
    const base = { version: 1, name: "x", base: { model: "sdxl" }, trainer: { name: "diffusers" }, target: "character", trigger: { word: "txcl" } };
    expect(ContractSchema.safeParse({ ...base, dataset: { path: "d", buckets: { step: 64 } } }).success).toBe(false);
    expect(ContractSchema.safeParse({ ...base, dataset: { path: "d", aspect: "buckets", buckets: { step: 48 } } }).success).toBe(false);
    expect(ContractSchema.safeParse({ ...base, dataset: { path: "d", aspect: "buckets", buckets: { step: 64 } } }).success).toBe(true);
  });
});

describe("buckets in the plan and the compilers", () => {
  const sdxl = (aspect: "square" | "buckets") =>
    contract({
      base: { model: "sdxl" },
      trainer: { name: "diffusers" },
      hardware: { kind: "local", gpu: "H200", vram_gb: 141 },
      dataset: { path: "./dataset", aspect },
      hyperparameters: { optimizer: "adamw", steps: 1000, save_every: 250 },
    });

  it("several bucket shapes turn the whole-step CUDA graph off, with the reason shown", () => {
    expect(resolveTrainSettings(sdxl("square"), { steps: 1000 }).cudaGraphs).toBe(true);
    const s = resolveTrainSettings(sdxl("buckets"), { steps: 1000 });
    expect(s.cudaGraphs).toBe(false);
    expect(s.choices.find((c) => c.setting === "cuda_graphs")?.why).toMatch(/25 bucket shapes/);
  });

  it("several bucket shapes turn compile off for FLUX.1, with the reason shown", () => {
    const flux = (aspect: "square" | "buckets") =>
      contract({ base: { model: "flux1-dev" }, trainer: { name: "diffusers" }, hardware: { kind: "local", gpu: "H200", vram_gb: 141 }, dataset: { path: "./dataset", aspect }, hyperparameters: { steps: 3000, save_every: 250 } });
    expect(resolveTrainSettings(flux("square"), { steps: 3000 }).compile).toBe(true);
    const s = resolveTrainSettings(flux("buckets"), { steps: 3000 });
    expect(s.compile).toBe(false);
    expect(s.choices.find((c) => c.setting === "compile")?.why).toMatch(/bucket shapes/);
  });

  it("the plan's VRAM peak covers the largest bucket (area <= resolution², the square the plan sizes)", () => {
    const c = sdxl("buckets");
    const plan = planRun(c, dataset(20));
    const largest = Math.max(...resolveBuckets(c, plan.resolution).buckets.map((b) => b.width * b.height));
    expect(plan.resolution).toBe(1024);
    expect(largest).toBe(plan.resolution ** 2);
  });

  it("the built-in trainer's request carries the bucket set; no W_NO_BUCKETS", () => {
    const out = compileDiffusers(sdxl("buckets"), {}, { datasetDir: "/d", outputDir: "/o" });
    expect(out.request.buckets).toEqual(makeBuckets(1024, 256, 1024, 64));
    expect(out.warnings.map((w) => w.code)).not.toContain("W_NO_BUCKETS");
  });

  it("Kohya gets min/max/steps and one [[datasets]] per resolution; ai-toolkit the resolution list only", () => {
    const c = contract({ base: { model: "sdxl" }, trainer: { name: "kohya" }, dataset: { path: "./dataset", aspect: "buckets", buckets: { min_side: 320, max_side: 1536, step: 32, resolutions: [512] } } });
    const toml = compileKohya(c, {}, PATHS).files.find((f) => f.path.endsWith("dataset.toml"))!.content;
    expect(toml.match(/\[\[datasets\]\]/g)?.length).toBe(2);
    expect(toml).toMatch(/min_bucket_reso = 320/);
    expect(toml).toMatch(/max_bucket_reso = 1536/);
    expect(toml).toMatch(/bucket_reso_steps = 32/);
    expect(toml).not.toMatch(/bucket_no_upscale/);
    const a = contract({ base: { model: "sdxl" }, trainer: { name: "ai-toolkit" }, dataset: { path: "./dataset", aspect: "buckets", buckets: { resolutions: [512, 768], step: 32 } } });
    const yaml = compileAiToolkit(a, {}, PATHS).files.map((f) => f.content).join("\n");
    expect(yaml).toMatch(/resolution:\n\s+- 512\n\s+- 768\n\s+- 1024/);
    // ai-toolkit overwrites bucket_tolerance with the model's divisibility (data_loader.py L395): not written, and check says so
    expect(yaml).not.toMatch(/bucket_tolerance/);
    const ignored = lintContract(contract({ trainer: { name: "ai-toolkit" }, dataset: { path: "./dataset", aspect: "buckets", buckets: { min_side: 320, step: 32 } } }));
    expect(ignored.filter((f) => f.rule === "trainer-ignores-field").map((f) => f.field)).toEqual(expect.arrayContaining(["dataset.buckets.min_side", "dataset.buckets.step"]));
  });
});

describe("lint buckets-invalid", () => {
  it("says before any run what the compilers would refuse, naming the field", () => {
    const bad = contract({ dataset: { path: "./dataset", aspect: "buckets", buckets: { min_side: 300 } } });
    const f = lintContract(bad).filter((x) => x.rule === "buckets-invalid");
    expect(f.map((x) => [x.field, x.severity])).toEqual([["dataset.buckets.min_side", "error"]]);
    expect(lintContract(contract({ dataset: { path: "./dataset", aspect: "buckets" } })).some((x) => x.rule === "buckets-invalid")).toBe(false);
  });
});

describe("walltime with multi-resolution buckets", () => {
  it("a step costs the mean area of the training resolutions; the VRAM peak stays at the largest", async () => {
    const { meanTrainingArea } = await import("@loraspec/core/plan/walltime.js");
    const one = contract({ base: { model: "sdxl" }, dataset: { path: "./dataset", aspect: "buckets" } });
    const multi = contract({ base: { model: "sdxl" }, dataset: { path: "./dataset", aspect: "buckets", buckets: { resolutions: [512, 768] } } });
    expect(meanTrainingArea(one, 1024)).toBe(1024 ** 2);
    expect(meanTrainingArea(multi, 1024)).toBe((512 ** 2 + 768 ** 2 + 1024 ** 2) / 3);
    const a = planRun(one, dataset(20));
    const b = planRun(multi, dataset(20));
    expect(b.vram.totalGb).toBe(a.vram.totalGb);
    const h200 = (p: typeof a) => p.walltime.find((w) => w.gpu === "h200")!.secondsPerStep;
    expect(h200(b)).toBeLessThan(h200(a));
  });
});
