import { describe, expect, it } from "vitest";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml } from "yaml";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { compileFal } from "@loraspec/core/compile/fal/compile-fal.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { resolveSamples, sampleImageCount, sampleStepsOf } from "@loraspec/core/compile/samples.js";
import type { Contract, ContractInput } from "@loraspec/core/contract/schema.js";
import { TRAINER_IDS, type TrainerId } from "@loraspec/core/contract/ids.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { makeContract, PATHS } from "./contract-fixture.js";

/**
 * What the compiled config does against what the plan counts, for every trainer: the sample renders
 * (cadence and image count; off renders none) and the checkpoints kept. A trainer's compiler that
 * renders or deletes what the plan does not count fails here (ai-toolkit rendered every save with
 * samples off, and kept 4 of 8 checkpoints).
 */
const BASES = { diffusers: "flux1-dev", kohya: "sdxl", "ai-toolkit": "flux1-dev", fal: "flux1-dev" } as const;

function contractFor(trainer: TrainerId, overrides: Partial<ContractInput>): Contract {
  return makeContract({
    base: BASES[trainer],
    target: "character",
    trainer: trainer === "diffusers" ? "kohya" : trainer,
    path: trainer === "kohya" || trainer === "diffusers" ? "/models/base" : undefined,
    overrides: { ...(trainer === "diffusers" ? { trainer: { name: "diffusers" } } : {}), ...overrides },
  });
}

/** Kohya's args TOML with its sections flattened (sd-scripts reads every section's keys as one namespace). */
function kohyaArgs(toml: string): Record<string, unknown> {
  return Object.assign({}, ...Object.values(parseToml(toml) as Record<string, Record<string, unknown>>));
}

interface Renders {
  every: number;
  images: number;
}

/** The renders the compiled config asks its trainer for, read from the config as the trainer reads it. */
function compiledRenders(c: Contract, steps: number): Renders {
  const plan = { steps };
  if (c.trainer.name === "diffusers") {
    const s = compileDiffusers(c, plan, PATHS).request.samples;
    if (!s) return { every: 0, images: 0 };
    return { every: s.every, images: sampleStepsOf(s.every, steps, s.first).length * s.prompts.length * s.seeds.length };
  }
  if (c.trainer.name === "kohya") {
    const out = compileKohya(c, plan, PATHS);
    const args = kohyaArgs(out.argsToml);
    const every = Number(args.sample_every_n_steps ?? 0);
    if (!every || !args.sample_prompts) return { every: 0, images: 0 };
    const file = out.files.find((f) => f.path === args.sample_prompts)!;
    const lines = file.content.split("\n").filter((l) => l.trim() && !l.startsWith("#")).length;
    return { every, images: sampleStepsOf(every, steps, args.sample_at_first === true).length * lines };
  }
  if (c.trainer.name === "ai-toolkit") {
    const proc = (compileAiToolkit(c, plan, PATHS).job.config as { process: Array<{ train: Record<string, unknown>; sample: Record<string, unknown> }> }).process[0]!;
    if (proc.train.disable_sampling === true) return { every: 0, images: 0 };
    // ai-toolkit's SampleConfig defaults sample_every to 100 and renders at the end unless disable_sampling.
    const every = Number(proc.sample.sample_every ?? 100);
    const items = Array.isArray(proc.sample.samples) ? proc.sample.samples.length : Array.isArray(proc.sample.prompts) ? proc.sample.prompts.length : 0;
    return { every, images: sampleStepsOf(every, steps, proc.train.skip_first_sample === false).length * items };
  }
  const input = compileFal(c, plan, { zipUrl: "https://example.com/d.zip" }).input as Record<string, unknown>;
  expect(Object.keys(input).filter((k) => /sample/i.test(k))).toEqual([]);
  return { every: 0, images: 0 };
}

/** Step checkpoints the compiled config leaves on disk at the end (Infinity: it deletes none). */
function compiledKept(c: Contract, steps: number): number {
  const plan = { steps };
  if (c.trainer.name === "diffusers") return compileDiffusers(c, plan, PATHS).request.save_every > 0 ? Infinity : 1;
  if (c.trainer.name === "kohya") {
    const args = kohyaArgs(compileKohya(c, plan, PATHS).argsToml);
    return typeof args.save_last_n_steps === "number" ? Math.floor(args.save_last_n_steps / Number(args.save_every_n_steps)) : Infinity;
  }
  if (c.trainer.name === "ai-toolkit") {
    const save = (compileAiToolkit(c, plan, PATHS).job.config as { process: Array<{ save: Record<string, unknown> }> }).process[0]!.save;
    return Number(save.max_step_saves_to_keep ?? 5);
  }
  return 1; // fal returns one LoRA
}

const SAMPLE_SETTINGS: Array<[string, Partial<ContractInput>]> = [
  ["samples left out", {}],
  ["samples.every 0", { samples: { every: 0 } }],
  ["samples.every 0 with prompts", { samples: { every: 0, prompts: ["a photo of {trigger}"] } }],
  ["samples.every 250", { samples: { every: 250 } }],
  ["samples.every 300, 2 prompts x 2 seeds", { samples: { every: 300, prompts: ["a photo of {trigger}", "{trigger} in Paris"], seeds: [1, 2] } }],
  ["samples.every 500, first", { samples: { every: 500, first: true } }],
];

describe("compiled sample renders = the plan's", () => {
  const cases = TRAINER_IDS.flatMap((t) => SAMPLE_SETTINGS.map(([label, o]) => [t, label, o] as const));
  it.each(cases)("%s, %s", (trainer, _label, overrides) => {
    const c = contractFor(trainer, { hyperparameters: { learning_rate: 1e-4, steps: 2000, rank: 16, save_every: 250 }, ...overrides });
    const plan = planRun(c);
    const planned = resolveSamples(c, plan.resolution);
    const got = compiledRenders(c, plan.steps);
    expect(got).toEqual({ every: planned?.every ?? 0, images: sampleImageCount(planned, plan.steps) });
    // the plan times exactly the renders it counts
    expect(plan.walltime[0]!.samplingSeconds !== undefined).toBe(got.images > 0);
  });
});

const SAVE_SETTINGS: Array<[string, number, number | undefined]> = [
  ["2000 steps, save_every 250 (8)", 2000, 250],
  ["2000 steps, save_every 100 (20)", 2000, 100],
  ["1500 steps, save_every 400 (3)", 1500, 400],
  ["1000 steps, no save_every", 1000, undefined],
];

describe("compiled checkpoints kept = the plan's", () => {
  const cases = TRAINER_IDS.flatMap((t) => SAVE_SETTINGS.map(([label, steps, every]) => [t, label, steps, every] as const));
  it.each(cases)("%s, %s", (trainer, _label, steps, every) => {
    const c = contractFor(trainer, { hyperparameters: { learning_rate: 1e-4, steps, rank: 16, ...(every ? { save_every: every } : {}) } });
    const plan = planRun(c);
    expect(Math.min(compiledKept(c, plan.steps), plan.checkpoints)).toBe(plan.checkpoints);
    if (trainer === "fal") expect(plan.checkpoints).toBe(1);
  });
});

/**
 * Steps per epoch as the compiled config runs them, read from the config as the trainer reads it: Kohya's
 * [[datasets]] (one per resolution) x their subsets' num_repeats, each batched by its own batch_size
 * (sd-scripts DatasetGroup); ai-toolkit's datasets split once per entry of their resolution list
 * (preprocess_dataset_raw_config) x num_repeats; the built-in trainer's entries (each image once per
 * resolution group of the request's buckets); fal's images. Then over accumulation and GPUs. The built-in
 * trainer and fal have no repeats: the plan's own split multiplies their one pass. One bucket per
 * resolution (square images), so each copy rounds up once.
 */
function compiledStepsPerEpoch(c: Contract, plan: ReturnType<typeof planRun>, images: number): number {
  const compilePlan = { steps: plan.steps, repeats: plan.repeats, learningRate: plan.learningRate, resolution: plan.resolution };
  const hp = c.hyperparameters;
  const gpus = c.hardware.kind === "fal" ? 1 : c.hardware.gpus * c.hardware.nodes;
  if (c.trainer.name === "kohya") {
    const out = compileKohya(c, compilePlan, PATHS);
    const toml = parseToml(out.datasetToml) as { datasets: Array<{ batch_size: number; subsets: Array<{ num_repeats: number; is_reg?: boolean }> }> };
    const batches = toml.datasets.reduce((sum, d) => sum + Math.ceil((images * d.subsets.filter((s) => !s.is_reg).reduce((n, s) => n + s.num_repeats, 0)) / d.batch_size), 0);
    return Math.ceil(batches / Number(kohyaArgs(out.argsToml).gradient_accumulation_steps ?? 1) / gpus);
  }
  if (c.trainer.name === "ai-toolkit") {
    const job = parseYaml(compileAiToolkit(c, compilePlan, PATHS).jobYaml) as {
      config: { process: Array<{ train: { batch_size: number; gradient_accumulation?: number }; datasets: Array<{ resolution: number | number[]; num_repeats?: number; is_reg?: boolean }> }> };
    };
    const proc = job.config.process[0]!;
    const copies = proc.datasets.filter((d) => !d.is_reg).flatMap((d) => (Array.isArray(d.resolution) ? d.resolution : [d.resolution]).map(() => d.num_repeats ?? 1));
    const batches = copies.reduce((sum, repeats) => sum + Math.ceil((images * repeats) / proc.train.batch_size), 0);
    return Math.ceil(batches / (proc.train.gradient_accumulation ?? 1) / gpus);
  }
  if (c.trainer.name === "diffusers") {
    const request = JSON.parse(JSON.stringify(compileDiffusers(c, compilePlan, PATHS).request)) as { buckets: Array<{ resolution: number }>; batch_size: number; gradient_accumulation: number };
    const entries = images * new Set(request.buckets.map((b) => b.resolution)).size;
    return Math.ceil(Math.ceil((entries * plan.repeats) / request.batch_size) / request.gradient_accumulation / gpus);
  }
  const input = compileFal(c, compilePlan, { zipUrl: "https://example.com/d.zip" }).input as Record<string, unknown>;
  expect(Object.keys(input).filter((k) => /resolution/i.test(k))).toEqual([]);
  return Math.ceil(images * plan.repeats);
}

const RESOLUTION_SETTINGS: Array<[string, Partial<ContractInput["dataset"]>]> = [
  ["square 1024", { aspect: "square", resolution: 1024 }],
  ["buckets, 1 resolution", { aspect: "buckets", resolution: 1024 }],
  ["buckets, 2 resolutions", { aspect: "buckets", resolution: 1024, buckets: { resolutions: [768] } }],
  ["buckets, 3 resolutions", { aspect: "buckets", resolution: 1024, buckets: { resolutions: [512, 768] } }],
];
const BATCHES: Array<[string, Partial<ContractInput["hyperparameters"]>]> = [
  ["batch 1", { batch_size: 1 }],
  ["batch 3 x accumulation 2", { batch_size: 3, gradient_accumulation: 2 }],
];

describe("compiled steps/epoch = the plan's", () => {
  const cases = TRAINER_IDS.flatMap((t) => RESOLUTION_SETTINGS.flatMap(([label, d]) => BATCHES.map(([bl, b]) => [t, `${label}, ${bl}`, d, b] as const)));
  it.each(cases)("%s, %s", (trainer, _label, dataset, batch) => {
    const images = 20;
    const c = contractFor(trainer, {
      dataset: { path: "./dataset", expected_images: images, ...dataset },
      hyperparameters: { learning_rate: 1e-4, steps: 2000, rank: 16, save_every: 250, ...(trainer === "fal" ? {} : batch) },
    });
    const plan = planRun(c);
    expect(plan.stepsPerEpoch).toBe(compiledStepsPerEpoch(c, plan, images));
    expect(plan.epochs).toBe(Math.ceil(plan.steps / plan.stepsPerEpoch));
  });

  it("Kohya with three resolutions: 20 images x 10 repeats at batch 1 is 600 steps/epoch, not 200", () => {
    const c = contractFor("kohya", { dataset: { path: "./dataset", expected_images: 20, aspect: "buckets", resolution: 1024, buckets: { resolutions: [512, 768] } } });
    const plan = planRun(c);
    expect(compiledStepsPerEpoch(c, { ...plan, repeats: 10 }, 20)).toBe(600);
    // the plan aims its repeats at ~10 epochs over the three copies: 1500 steps / 20 images = 75 passes -> 3 repeats
    expect({ repeats: plan.repeats, stepsPerEpoch: plan.stepsPerEpoch, epochResolutions: plan.epochResolutions }).toEqual({ repeats: 3, stepsPerEpoch: 180, epochResolutions: 3 });
  });
});
