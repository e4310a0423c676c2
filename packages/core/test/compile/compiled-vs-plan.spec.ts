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
 *
 * With `reg` regularisation images (compiled with the reg folder): Kohya's DreamBoothDataset registers the
 * is_reg subsets' images in turn, one more repeat per round, until they reach the dataset's images x
 * num_repeats (train_util.py L2166-2182, simulated below), and they batch with the dataset's; ai-toolkit
 * takes every micro-batch of an even step from its is_reg dataset unless the step saves or samples
 * (BaseSDTrainProcess.py L2553-2591, simulated below; `idealSteps` leaves save and sample steps out), and its
 * epoch is the dataset's; the built-in worker pools the reg folder's items with the dataset's
 * (train/data.py training_items). Returns the steps of one epoch and the training images' share of the batches.
 */
interface CompiledEpoch {
  stepsPerEpoch: number;
  /** ai-toolkit: the first epoch's steps with the compiled save and sample steps taking dataset batches. */
  realSteps?: number;
  trainShare: number;
}

/** sd-scripts DreamBoothDataset's reg padding (train_util.py L2166-2182): the reg entries registered for `numTrainImages`. */
function kohyaRegEntries(regRepeats: number[], numTrainImages: number): number {
  if (regRepeats.length === 0) return 0;
  const infos = [...regRepeats];
  let n = 0;
  let firstLoop = true;
  while (n < numTrainImages) {
    for (let i = 0; i < infos.length; i++) {
      if (firstLoop) n += infos[i]!;
      else {
        infos[i]! += 1;
        n += 1;
      }
      if (n >= numTrainImages) break;
    }
    firstLoop = false;
  }
  // only the infos registered in the first loop count: those after its break never were
  let registered = 0;
  let seen = 0;
  for (const r of regRepeats) {
    if (seen >= numTrainImages) break;
    registered += 1;
    seen += r;
  }
  return infos.slice(0, registered).reduce((a, b) => a + b, 0);
}

/** ai-toolkit's step loop (BaseSDTrainProcess.py L2553-2591): the steps until the dataset's `batches` micro-batches are all taken. */
function aiToolkitEpochSteps(batches: number, accumulation: number, reg: boolean, busy: (step: number) => boolean): number {
  let taken = 0;
  for (let step = 0; ; step++) {
    const regStep = step % 2 === 0 && reg && !busy(step);
    if (!regStep) taken += accumulation;
    if (taken >= batches) return step + 1;
  }
}

function compiledEpoch(c: Contract, plan: ReturnType<typeof planRun>, images: number, reg: number): CompiledEpoch {
  const compilePlan = { steps: plan.steps, repeats: plan.repeats, learningRate: plan.learningRate, resolution: plan.resolution };
  const paths = reg > 0 ? { ...PATHS, regDir: "/project/reg" } : PATHS;
  const gpus = c.hardware.kind === "fal" ? 1 : c.hardware.gpus * c.hardware.nodes;
  if (c.trainer.name === "kohya") {
    const out = compileKohya(c, compilePlan, paths);
    const toml = parseToml(out.datasetToml) as { datasets: Array<{ batch_size: number; subsets: Array<{ num_repeats: number; is_reg?: boolean; image_dir: string }> }> };
    let trainEntries = 0;
    let allEntries = 0;
    let batches = 0;
    for (const d of toml.datasets) {
      const numTrain = images * d.subsets.filter((s) => !s.is_reg).reduce((n, s) => n + s.num_repeats, 0);
      const regSubsets = d.subsets.filter((s) => s.is_reg);
      expect(regSubsets.length).toBe(reg > 0 ? 1 : 0);
      const regEntries = kohyaRegEntries(regSubsets.flatMap((s) => Array.from({ length: reg }, () => s.num_repeats)), numTrain);
      trainEntries += numTrain;
      allEntries += numTrain + regEntries;
      batches += Math.ceil((numTrain + regEntries) / d.batch_size);
    }
    return { stepsPerEpoch: Math.ceil(batches / Number(kohyaArgs(out.argsToml).gradient_accumulation_steps ?? 1) / gpus), trainShare: trainEntries / allEntries };
  }
  if (c.trainer.name === "ai-toolkit") {
    const job = parseYaml(compileAiToolkit(c, compilePlan, paths).jobYaml) as {
      config: {
        process: Array<{
          train: { batch_size: number; gradient_accumulation?: number; steps: number; disable_sampling?: boolean };
          save: { save_every?: number };
          sample: { sample_every?: number; sample_start_step?: number };
          datasets: Array<{ resolution: number | number[]; num_repeats?: number; is_reg?: boolean }>;
        }>;
      };
    };
    const proc = job.config.process[0]!;
    expect(proc.datasets.filter((d) => d.is_reg).length).toBe(reg > 0 ? 1 : 0);
    const copies = proc.datasets.filter((d) => !d.is_reg).flatMap((d) => (Array.isArray(d.resolution) ? d.resolution : [d.resolution]).map(() => d.num_repeats ?? 1));
    const batches = Math.ceil(copies.reduce((sum, repeats) => sum + Math.ceil((images * repeats) / proc.train.batch_size), 0) / gpus);
    const accumulation = proc.train.gradient_accumulation ?? 1;
    const saveEvery = proc.save.save_every ?? 0;
    const sampleEvery = proc.train.disable_sampling ? 0 : (proc.sample.sample_every ?? 100);
    const busy = (step: number) => (saveEvery > 0 && step % saveEvery === 0) || (sampleEvery > 0 && step >= (proc.sample.sample_start_step ?? 0) && step % sampleEvery === 0);
    const ideal = aiToolkitEpochSteps(batches, accumulation, reg > 0, () => false);
    // an odd ideal count means the epoch ended on a dataset step right after a reg step: the trainer's next step starts the next epoch
    const stepsPerEpoch = reg > 0 ? 2 * Math.ceil(batches / accumulation) : ideal;
    expect(ideal).toBe(reg > 0 ? stepsPerEpoch : Math.ceil(batches / accumulation));
    return { stepsPerEpoch, realSteps: aiToolkitEpochSteps(batches, accumulation, reg > 0, busy), trainShare: reg > 0 ? 0.5 : 1 };
  }
  if (c.trainer.name === "diffusers") {
    const request = JSON.parse(JSON.stringify(compileDiffusers(c, compilePlan, paths).request)) as { buckets: Array<{ resolution: number }>; batch_size: number; gradient_accumulation: number; reg_dataset?: string };
    expect(request.reg_dataset !== undefined).toBe(reg > 0);
    // training_items: the dataset's items then the reg folder's; plan_entries: every item once per resolution
    const items = images + (request.reg_dataset ? reg : 0);
    const entries = items * new Set(request.buckets.map((b) => b.resolution)).size;
    return { stepsPerEpoch: Math.ceil(Math.ceil((entries * plan.repeats) / request.batch_size) / request.gradient_accumulation / gpus), trainShare: images / items };
  }
  const input = compileFal(c, compilePlan, { zipUrl: "https://example.com/d.zip" }).input as Record<string, unknown>;
  expect(Object.keys(input).filter((k) => /resolution|reg/i.test(k))).toEqual([]);
  return { stepsPerEpoch: Math.ceil(images * plan.repeats), trainShare: 1 };
}

function compiledStepsPerEpoch(c: Contract, plan: ReturnType<typeof planRun>, images: number): number {
  return compiledEpoch(c, plan, images, 0).stepsPerEpoch;
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
/** Regularisation images in dataset.reg_path: none, fewer than the dataset's, more than its images x repeats. */
const REGS: Array<[string, number]> = [
  ["no reg", 0],
  ["7 reg images", 7],
  ["150 reg images", 150],
];

describe("compiled steps/epoch = the plan's", () => {
  const cases = TRAINER_IDS.flatMap((t) =>
    RESOLUTION_SETTINGS.flatMap(([label, d]) => BATCHES.flatMap(([bl, b]) => REGS.map(([rl, reg]) => [t, `${label}, ${bl}, ${rl}`, d, b, reg] as const))),
  );
  it.each(cases)("%s, %s", (trainer, _label, dataset, batch, reg) => {
    const images = 20;
    const c = contractFor(trainer, {
      dataset: { path: "./dataset", expected_images: images, ...dataset, ...(reg > 0 ? { reg_path: "./reg" } : {}) },
      hyperparameters: { learning_rate: 1e-4, steps: 2000, rank: 16, save_every: 250, ...(trainer === "fal" ? {} : batch) },
    });
    const plan = planRun(c, undefined, reg > 0 ? { regImages: reg } : {});
    const got = compiledEpoch(c, plan, images, reg);
    expect(plan.stepsPerEpoch).toBe(got.stepsPerEpoch);
    expect(plan.epochs).toBe(Math.ceil(plan.steps / plan.stepsPerEpoch));
    // the passes each training image gets over the run: the steps' images less the reg images' share
    expect(plan.passesPerImage).toBeCloseTo((plan.steps * plan.effectiveBatch * got.trainShare) / images, 0);
    // fal is handed no reg images: the plan counts none
    expect(plan.reg !== undefined).toBe(reg > 0 && trainer !== "fal");
    if (got.realSteps !== undefined) {
      // save and sample steps take a dataset batch on an even step: the first epoch ends at most that many steps early
      expect(got.realSteps).toBeLessThanOrEqual(plan.stepsPerEpoch);
      expect(got.realSteps).toBeGreaterThanOrEqual(reg > 0 ? plan.stepsPerEpoch / 2 : plan.stepsPerEpoch);
    }
  });

  it("Kohya with three resolutions: 20 images x 10 repeats at batch 1 is 600 steps/epoch, not 200", () => {
    const c = contractFor("kohya", { dataset: { path: "./dataset", expected_images: 20, aspect: "buckets", resolution: 1024, buckets: { resolutions: [512, 768] } } });
    const plan = planRun(c);
    expect(compiledStepsPerEpoch(c, { ...plan, repeats: 10 }, 20)).toBe(600);
    // the plan aims its repeats at ~10 epochs over the three copies: 1500 steps / 20 images = 75 passes -> 3 repeats
    expect({ repeats: plan.repeats, stepsPerEpoch: plan.stepsPerEpoch, epochResolutions: plan.epochResolutions }).toEqual({ repeats: 3, stepsPerEpoch: 180, epochResolutions: 3 });
  });

  it("Kohya pads 7 reg images to the dataset's 20 x repeats: an epoch holds both, whatever the reg count", () => {
    const dataset = { path: "./dataset", expected_images: 20, aspect: "square" as const, resolution: 1024, reg_path: "./reg" };
    const c = contractFor("kohya", { dataset, hyperparameters: { learning_rate: 1e-4, steps: 2000, rank: 16, batch_size: 1 } });
    expect(kohyaRegEntries([1, 1, 1, 1, 1, 1, 1], 100)).toBe(100);
    expect(kohyaRegEntries(Array.from({ length: 150 }, () => 1), 100)).toBe(100);
    const few = planRun(c, undefined, { regImages: 7 });
    const many = planRun(c, undefined, { regImages: 150 });
    // 2000 steps x 1 / 20 images = 100 passes, half on reg -> 5 repeats; 2 x 20 x 5 = 200 steps/epoch (100 without reg)
    expect({ repeats: few.repeats, stepsPerEpoch: few.stepsPerEpoch, epochs: few.epochs, passesPerImage: few.passesPerImage }).toEqual({ repeats: 5, stepsPerEpoch: 200, epochs: 10, passesPerImage: 50 });
    expect(many.stepsPerEpoch).toBe(few.stepsPerEpoch);
    expect(few.reg).toMatchObject({ count: 7, counted: "scan", rule: "pad", perEpoch: 100 });
    // left uncounted, a reg folder is planned with as many as the dataset's
    expect(planRun(c).reg).toMatchObject({ count: 20, counted: "assumed" });
  });
});
