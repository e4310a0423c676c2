import type { Contract } from "../../contract/schema.js";
import type { SampleWatch } from "../../trainers/sample-files.js";
import { resolveSamples } from "../samples.js";

/**
 * ai-toolkit's `sample:` block (SampleConfig, trainers.md §3.3). With the contract's samples off
 * (`samples.every` 0 or left out) it holds only the sampler and neg, no prompts: the job carries
 * `train.disable_sampling: true` (compile-ai-toolkit.ts), which ai-toolkit reads before every render
 * (the baseline, each `sample_every`, the end-of-run one), so it renders nothing, as Kohya and the
 * built-in trainer do and as the plan counts (it once rendered the rubric's prompts at every save). With samples on: the contract's prompts x seeds as `samples: [{prompt, seed}]` items
 * (an item's seed wins over walk_seed, BaseSDTrainProcess.py L337), every `samples.every` steps (the
 * plan's cadence: compile/samples.ts resolveSamples), its inference steps and guidance.
 */
export function aiToolkitSampleBlock(contract: Contract, resolution: number, sampler: string): Record<string, unknown> {
  const common = {
    // Must match train.noise_scheduler.
    sampler,
    // ai-toolkit's default `neg: False` reaches the SDXL tokenizer as a bool and the first
    // sample crashes the run (recorded on the GPU); the examples write "" (unused by FLUX).
    neg: "",
  };
  const s = resolveSamples(contract, resolution);
  if (!s) return common;
  return {
    ...common,
    sample_every: s.every,
    width: s.width,
    height: s.height,
    guidance_scale: s.guidance,
    sample_steps: s.steps,
    samples: s.prompts.flatMap((prompt) => s.seeds.map((seed) => ({ prompt, seed }))),
  };
}

/**
 * The prompt and seed behind each sample ai-toolkit renders from a `sample:` block, in its order (the
 * `[count]` of its file names): an item's own seed, else `seed` walked by position (walk_seed), its
 * `[trigger]` placeholder filled (BaseSDTrainProcess.py L299-343 at the pin, trainers.md §3.3).
 */
export function aiToolkitSampleItems(block: Record<string, unknown>, trigger: string): SampleWatch["items"] {
  const fill = (prompt: string) => prompt.replaceAll("[trigger]", trigger);
  if (Array.isArray(block.samples)) {
    return (block.samples as { prompt: string; seed: number }[]).map(({ prompt, seed }) => ({ prompt: fill(prompt), seed }));
  }
  const start = typeof block.seed === "number" ? block.seed : 0;
  const prompts = Array.isArray(block.prompts) ? (block.prompts as string[]) : [];
  return prompts.map((prompt, i) => ({ prompt: fill(prompt), seed: block.walk_seed ? start + i : start }));
}
