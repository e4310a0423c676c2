import type { BaseModelId } from "./base-models.js";
import type { Sourced } from "./types.js";

/**
 * How a base model is sampled while it trains: inference steps and guidance. The one home of these
 * numbers: the built-in trainer's samples (compile/samples.ts), Kohya's sample-prompt flags and
 * ai-toolkit's `sample:` block all read them.
 *
 * `guidance` is either classifier-free guidance (`cfg`: two denoiser passes per step, Kohya's
 * `--l`) or FLUX's embedded guidance (`embedded`: one pass, Kohya's `--g`).
 */
export interface SamplingRecord extends Sourced {
  steps: number;
  guidance: number;
  guidanceKind: "cfg" | "embedded";
}

const DOC = "shared/reference/trainers.md";
const AS_OF = "2026-12-02";
const AIT = "ostris/ai-toolkit@27a03a9";

export const SAMPLING: Readonly<Record<BaseModelId, SamplingRecord>> = {
  sdxl: { steps: 20, guidance: 6, guidanceKind: "cfg", source: `${DOC} §3.1 (ai-toolkit UI sdxl: guidance 6), §3.3 (SampleConfig sample_steps 20)`, asOf: AS_OF },
  "flux1-dev": { steps: 20, guidance: 4, guidanceKind: "embedded", source: `${AIT} config/examples/train_lora_flux_24gb.yaml L92-93 (guidance_scale 4, sample_steps 20)`, asOf: AS_OF },
  "flux1-schnell": { steps: 4, guidance: 1, guidanceKind: "embedded", source: `${AIT} config/examples/train_lora_flux_schnell_24gb.yaml L94-95 (guidance 1: "schnell does not do guidance", 4 steps)`, asOf: AS_OF },
  "flux2-dev": { steps: 25, guidance: 4, guidanceKind: "embedded", source: `${DOC} §3.1 (no ai-toolkit example for FLUX.2; the 24 GB examples' 25 steps, guidance 4)`, asOf: AS_OF, verified: false },
  "flux2-klein-4b": { steps: 25, guidance: 4, guidanceKind: "cfg", source: `diffusers 0.42.1 pipeline_flux2_klein.py L624 (guidance_scale 4.0); steps as the 24 GB examples`, asOf: AS_OF, verified: false },
  "flux2-klein-9b": { steps: 25, guidance: 4, guidanceKind: "cfg", source: `diffusers 0.42.1 pipeline_flux2_klein.py L624 (guidance_scale 4.0); steps as the 24 GB examples`, asOf: AS_OF, verified: false },
  "qwen-image": { steps: 25, guidance: 3, guidanceKind: "cfg", source: `${AIT} config/examples/train_lora_qwen_image_24gb.yaml L91-92 (guidance_scale 3, sample_steps 25)`, asOf: AS_OF },
  "zimage-turbo": { steps: 9, guidance: 1, guidanceKind: "cfg", source: `${DOC} §3.1 (ai-toolkit UI zimage:turbo: sample guidance 1, 9 steps)`, asOf: AS_OF, verified: false },
  "sd35-large": { steps: 25, guidance: 4, guidanceKind: "cfg", source: `${AIT} config/examples/train_lora_sd35_large_24gb.yaml L93-94 (guidance_scale 4, sample_steps 25)`, asOf: AS_OF },
};

/** Seeds and how many validation prompts the samples take when the contract names none. */
export const SAMPLE_DEFAULTS: Sourced & { seeds: readonly number[]; maxDefaultPrompts: number } = {
  // ai-toolkit's examples sample with seed 42 (walk_seed); two prompts: one of the dataset's scenes
  // (a trigger prompt) and one novel scene, so the strip shows both likeness and generalisation.
  seeds: [42],
  maxDefaultPrompts: 2,
  source: `${AIT} config/examples/train_lora_flux_24gb.yaml L90 (seed: 42); prompt count ours`,
  asOf: AS_OF,
};

/**
 * Steps a render takes when no base model is known (validate --lora without a contract, the exported
 * script with --base): the diffusers FLUX.1 and SD3 pipelines' own default; guidance is then the
 * pipeline's own default too.
 */
export const UNKNOWN_BASE_STEPS: Sourced & { steps: number } = {
  steps: 28,
  source: "diffusers 0.35 FluxPipeline / StableDiffusion3Pipeline __call__ num_inference_steps=28",
  asOf: AS_OF,
};

export function samplingOf(base: BaseModelId): SamplingRecord {
  return SAMPLING[base];
}
