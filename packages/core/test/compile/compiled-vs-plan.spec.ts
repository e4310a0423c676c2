import { describe, expect, it } from "vitest";
import { parse as parseToml } from "smol-toml";
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
