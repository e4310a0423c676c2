import type { Contract } from "../contract/schema.js";
import { SAMPLE_DEFAULTS, samplingOf, type SamplingRecord } from "../knowledge/sampling.js";
import { withTrigger } from "../validate/plan-validation.js";

/**
 * The contract's `samples` section resolved for one run: what every trainer renders while it
 * trains (the built-in trainer's request, Kohya's prompt file, ai-toolkit's `sample:` block) and
 * what the plan counts in the walltime. Pure.
 */
export interface ResolvedSamples {
  /** Optimizer steps between two renders (and once more at the end). */
  every: number;
  /** Trigger filled in; one line each. */
  prompts: string[];
  seeds: number[];
  steps: number;
  guidance: number;
  guidanceKind: SamplingRecord["guidanceKind"];
  /** Also render at step 0, before training (the base model's images). */
  first: boolean;
  width: number;
  height: number;
}

/** Kohya's prompt file is line-based with options after " --": a default taken from the rubric is made one clean line. */
function oneLine(prompt: string): string {
  return prompt.replace(/[\r\n]+/g, " ").replaceAll("--", "-").trim();
}

/** The rubric's first trigger prompt and first novel scene (SAMPLE_DEFAULTS.maxDefaultPrompts). */
export function defaultSamplePrompts(contract: Contract): string[] {
  const v = contract.validation;
  const picked = [v.trigger_prompts[0] ?? "a photo of {trigger}", ...v.novel_scenes.slice(0, 1)];
  return picked.slice(0, SAMPLE_DEFAULTS.maxDefaultPrompts);
}

/**
 * The samples a run renders, or undefined when `samples.every` is 0 or left out (off), or the trainer is
 * fal (its endpoints render none: lint's trainer-ignores-field). The one home of what every compiler
 * renders and the plan times (a test holds each trainer's compiled cadence to it).
 */
export function resolveSamples(contract: Contract, resolution: number): ResolvedSamples | undefined {
  const s = contract.samples;
  if (!s.every || contract.trainer.name === "fal") return undefined;
  const knowledge = samplingOf(contract.base.model);
  const prompts = (s.prompts ?? defaultSamplePrompts(contract)).map((p) => oneLine(withTrigger(p, contract.trigger.word)));
  return {
    every: s.every,
    prompts,
    seeds: [...(s.seeds ?? SAMPLE_DEFAULTS.seeds)],
    steps: s.steps ?? knowledge.steps,
    guidance: s.guidance ?? knowledge.guidance,
    guidanceKind: knowledge.guidanceKind,
    first: s.first ?? false,
    width: resolution,
    height: resolution,
  };
}

/** The training steps a run renders samples after: every N steps, and the last step (and 0, before training, with `first`). */
export function sampleStepsOf(every: number, totalSteps: number, first = false): number[] {
  if (every <= 0) return [];
  const out: number[] = first ? [0] : [];
  for (let step = every; step < totalSteps; step += every) out.push(step);
  out.push(totalSteps);
  return out;
}

/** How many images a run renders (prompts x seeds at each sampling step). */
export function sampleImageCount(samples: ResolvedSamples | undefined, totalSteps: number): number {
  if (!samples) return 0;
  return sampleStepsOf(samples.every, totalSteps, samples.first).length * samples.prompts.length * samples.seeds.length;
}
