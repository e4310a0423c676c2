import type { Contract } from "../contract/schema.js";
import { resolveSamples, sampleImageCount } from "../compile/samples.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { BUILTIN_TRAINER, builtinArchOf } from "../knowledge/builtin-trainer.js";
import type { Sourced } from "../knowledge/types.js";
import { samplePassOf, type SamplePath } from "../knowledge/whole-run.js";
import { sampleMergeKind } from "./sample-merge.js";
import type { TrainSettings } from "./train-settings.js";

export type { SamplePath } from "../knowledge/whole-run.js";

/**
 * One denoiser forward pass as a share of a frozen-base LoRA training step without checkpointing:
 * FLUX.1 74.4 / 171 TF = 0.44, SDXL 6.76 / 14.7 TF = 0.46 at 1024² (perf-reliability.md §1.3).
 * The fallback where no sample pass of this arch and path is measured (knowledge/whole-run.ts SAMPLE_PASSES).
 */
export const FORWARD_SHARE_OF_STEP: Sourced & { share: number } = {
  share: 0.45,
  source: "shared/reference/perf-reliability.md §1.3 (forward F vs LoRA step FLOPs: FLUX.1 74.4/171 TF, SDXL 6.76/14.7 TF)",
  asOf: "2026-12-02",
};

export interface SampleTime {
  images: number;
  /** Seconds of sampling over the run (denoiser passes, plus the rest of each image where measured). */
  seconds: number;
  /** The path the figure is for (the built-in trainer's; undefined for another trainer). */
  path?: SamplePath;
  source: string;
}

/**
 * How the built-in trainer renders its samples, as core decides it: the denoiser forward replayed from a
 * CUDA graph (BUILTIN_TRAINER.sampleGraph) and/or the LoRA merged into weights of its own
 * (BUILTIN_TRAINER.sampleMerge, plan/sample-merge.ts sampleMergeKind: the rule vram-extras.ts sampleMergeGb
 * counts the buffers of).
 */
export function samplePath(model: BaseModelRecord, contract: Contract, settings: Pick<TrainSettings, "quantize" | "fp8Matmul" | "compile">): SamplePath {
  const { arch } = builtinArchOf(model.id);
  const graph = (BUILTIN_TRAINER.sampleGraph.arches as readonly string[]).includes(arch);
  // Either merge (SDXL's buffers, FLUX's per call) and FLUX's compiled samples are measured paths of their own
  // (knowledge/whole-run.ts SAMPLE_PASSES).
  const kind = sampleMergeKind(arch, contract.network.type, settings);
  if (kind === "compiled") return "compiled";
  const merge = kind !== "none";
  return graph && merge ? "graph+merge" : graph ? "graph" : merge ? "merge" : "eager";
}

export interface SampleScale {
  /** How much longer a step takes on this card than on the H200 (plan/walltime.ts gpuFactor): moves the H200 pass figure. */
  gpuFactor: number;
  /** The path to time (default: samplePath's, what the worker does today). */
  path?: SamplePath;
  /** Whether torch.compile's cache holds the run's graphs (the compiled path's first sample traces, not compiles). */
  compileCache?: "cold" | "warm";
}

/**
 * Sampling time of a run: images x inference steps x one denoiser pass (two with CFG). The built-in
 * trainer's pass is the measured H200 figure of its arch and sample path (knowledge/whole-run.ts), moved
 * to this card as its training step moves and to the samples' pixel count, plus the rest of each image;
 * elsewhere (another trainer, a path not measured) the pass is this run's own s/step times its FLOPs share.
 */
export function sampleTime(contract: Contract, model: BaseModelRecord, resolution: number, steps: number, secondsPerStep: number, settings: TrainSettings, scale: SampleScale): SampleTime | undefined {
  const samples = resolveSamples(contract, resolution);
  if (!samples) return undefined;
  const passes = samples.guidanceKind === "cfg" && samples.guidance > 1 ? 2 : 1;
  const images = sampleImageCount(samples, steps);
  const builtIn = contract.trainer.name === "diffusers";
  const path = builtIn ? (scale.path ?? samplePath(model, contract, settings)) : undefined;
  const measured = path ? samplePassOf(builtinArchOf(model.id).arch, path) : undefined;
  if (measured) {
    const onCard = scale.gpuFactor * (resolution ** 2 / 1024 ** 2);
    const pass = measured.passSeconds * onCard;
    const first = scale.compileCache === "warm" ? (measured.firstExtraWarmS ?? measured.firstExtraS) : measured.firstExtraS;
    const seconds = images * (samples.steps * passes * pass + measured.imageExtraS * onCard) + first * onCard;
    return {
      images,
      seconds: Math.round(seconds),
      path,
      source: `${images} images x (${samples.steps} steps x ${passes} pass(es) x ${pass.toFixed(3)} s + ${(measured.imageExtraS * onCard).toFixed(2)} s) on the ${path} sample path (${measured.source})`,
    };
  }
  const hp = contract.hyperparameters;
  const stepTflops = settings.gradientCheckpointing ? model.loraStepTflops.ckpt : model.loraStepTflops.noCkpt;
  const perSampleStep = secondsPerStep / (hp.batch_size * hp.gradient_accumulation);
  const forward = perSampleStep * ((FORWARD_SHARE_OF_STEP.share * model.loraStepTflops.noCkpt) / stepTflops);
  return {
    images,
    seconds: Math.round(images * samples.steps * passes * forward),
    ...(path ? { path } : {}),
    source: `${images} images x ${samples.steps} steps x ${passes} pass(es) x ${forward.toFixed(3)} s (${path ? `the ${path} sample path not measured: ` : ""}${FORWARD_SHARE_OF_STEP.source})`,
  };
}
