import type { Contract } from "../contract/schema.js";
import { resolveSamples, sampleImageCount } from "../compile/samples.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import type { Sourced } from "../knowledge/types.js";
import type { TrainSettings } from "./train-settings.js";

/**
 * One denoiser forward pass as a share of a frozen-base LoRA training step without checkpointing:
 * FLUX.1 74.4 / 171 TF = 0.44, SDXL 6.76 / 14.7 TF = 0.46 at 1024² (perf-reliability.md §1.3).
 */
export const FORWARD_SHARE_OF_STEP: Sourced & { share: number } = {
  share: 0.45,
  source: "shared/reference/perf-reliability.md §1.3 (forward F vs LoRA step FLOPs: FLUX.1 74.4/171 TF, SDXL 6.76/14.7 TF)",
  asOf: "2026-12-02",
};

export interface SampleTime {
  images: number;
  /** Seconds of sampling over the run (denoiser passes only; the VAE decode is left out). */
  seconds: number;
  source: string;
}

/**
 * Sampling time of a run: images x inference steps x one forward pass (two with CFG), the pass
 * timed from this run's own s/step (the walltime model's figure) by its FLOPs share.
 */
export function sampleTime(contract: Contract, model: BaseModelRecord, resolution: number, steps: number, secondsPerStep: number, settings: TrainSettings): SampleTime | undefined {
  const samples = resolveSamples(contract, resolution);
  if (!samples) return undefined;
  const hp = contract.hyperparameters;
  const stepTflops = settings.gradientCheckpointing ? model.loraStepTflops.ckpt : model.loraStepTflops.noCkpt;
  const perSampleStep = secondsPerStep / (hp.batch_size * hp.gradient_accumulation);
  const forward = perSampleStep * ((FORWARD_SHARE_OF_STEP.share * model.loraStepTflops.noCkpt) / stepTflops);
  const passes = samples.guidanceKind === "cfg" && samples.guidance > 1 ? 2 : 1;
  const images = sampleImageCount(samples, steps);
  return {
    images,
    seconds: Math.round(images * samples.steps * passes * forward),
    source: `${images} images x ${samples.steps} steps x ${passes} pass(es) x ${forward.toFixed(3)} s (${FORWARD_SHARE_OF_STEP.source})`,
  };
}
