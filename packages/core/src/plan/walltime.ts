import type { Contract } from "../contract/schema.js";
import { getBaseModel, type BaseModelRecord } from "../knowledge/base-models.js";
import { DENSE_BF16_SOURCE, GPUS, MEM_BANDWIDTH_SOURCE, type GpuRecord } from "../knowledge/gpus.js";
import { LORA_BF16_TWINS, SPEED_PROXY, TRAIN_SPEED_SOURCE, trainSpeedsFor } from "../knowledge/train-speed.js";
import { GPU_SCALING, H200_GEMM_TFLOPS, MEASURED_CARD_FACTORS, TRAINER_SPEEDS, type GpuScalingRecord, type MeasuredCardFactor, type TrainerSpeedRecord } from "../knowledge/trainer-speeds.js";
import { fa4RunsOn } from "./attention.js";
import { describeLookup, LORA_FP32_NOTE, lookupTrainSpeed, lookupTrainSpeedPair, type SpeedLookup } from "./train-speed.js";
import { sampleTime, type SamplePath } from "./sample-time.js";
import { walltimeParts, type WalltimePart } from "./walltime-parts.js";
import { allLinearAnchorNote, attentionOnly, targetSpeedFactor } from "./target-speed.js";
import { networkCost } from "./network-cost.js";
import type { TrainSettings } from "./train-settings.js";
import { trainingResolutions } from "./training-resolutions.js";

export type { WalltimePart } from "./walltime-parts.js";

export interface WalltimeEstimate {
  gpu: string;
  label: string;
  secondsPerStep: number;
  /** The whole run: the sum of `parts` (start-up, load, caching, warm-up, steps, saves, samples), hours. */
  hours: number;
  /** The same sum in seconds. */
  seconds: number;
  /** Each term of the run with why and its source (plan/walltime-parts.ts). */
  parts: WalltimePart[];
  /** Terms the estimate leaves out because nothing measures them (another trainer's start-up, saves). */
  omitted?: string;
  /** Seconds of sample rendering inside `hours` (plan/sample-time.ts), when samples are on. */
  samplingSeconds?: number;
  /**
   * measured: a row we measured on this GPU; derived: a measured row of this model x a lever ratio
   * measured on the same card; scaled: the H200 figure moved to this card by its datasheet
   * throughput and bandwidth (GPU_SCALING); flops: no row for this model, counted FLOPs at the
   * rate the trainer reached on FLUX.1 on the H200.
   */
  basis: "measured" | "derived" | "scaled" | "flops";
  /** The measured configuration behind the figure. */
  config?: string;
  source: string;
}

/** Every walltime starts from a figure on this card: one base per workload, so GPUs cannot swap places. */
export const ANCHOR_GPU = "h200";

interface Anchor {
  /** s/step at 1024² for batch_size samples, on the H200. */
  secondsPerStep: number;
  basis: "measured" | "derived" | "flops";
  config: string;
  source: string;
  /** The row's first steps beyond steady ones (plan/train-speed.ts), where a row was measured. */
  warmupBeyondSteadyS?: number;
  /** The row already trained the contract's modules (an all-linear row): no target-preset factor on top. */
  targetsMeasured?: true;
}

const builtInRow = (base: string, ckpt: boolean) => trainSpeedsFor(base as BaseModelRecord["id"]).find((r) => !r.attention && !r.targets && r.config === "eager" && r.batch === 1 && r.gradientCheckpointing === ckpt && r.levers.length === 0);
const trainerRow = (trainer: TrainerSpeedRecord["trainer"], base: BaseModelRecord["id"], quantize: "none" | "fp8") => TRAINER_SPEEDS.find((r) => r.trainer === trainer && r.base === base && r.quantize === quantize);

/**
 * The built-in trainer's H200 figure for these settings (lookupTrainSpeed), else its FLOPs at FLUX.1's eager rate. A LoRA
 * on more than the attention preset: the measured all-linear row of these settings where there is one (no preset factor
 * then), else the attention row (walltimeOn multiplies by the preset's ratio).
 */
function builtInAnchor(model: BaseModelRecord, contract: Contract, settings: TrainSettings, batch: number, gpu: GpuRecord): Anchor {
  // A card where the fp8 GEMMs do not run trains with bf16 GEMMs: time it from the row without them.
  // Likewise torch's attention kernel where FlashAttention-4 does not run (plan/attention.ts).
  const gemms = settings.fp8Matmul && !gpu.fp8RowwiseGemm ? { ...settings, fp8Matmul: false } : settings;
  const onCard = gemms.attention === "fa4" && !fa4RunsOn(gpu) ? { ...gemms, attention: "sdpa" as const } : gemms;
  const allLinear = attentionOnly(contract, model) ? undefined : allLinearAnchor(model, onCard, batch);
  if (allLinear) {
    const taken = allLinearAnchorNote(contract);
    return { ...allLinear, targetsMeasured: true, ...(taken ? { basis: "derived" as const, config: `${allLinear.config} ${taken.config}`, source: taken.source ? `${allLinear.source}; ${taken.source}` : allLinear.source } : {}) };
  }
  const speed = lookupTrainSpeed(model.id, onCard, batch) ?? selectiveFromFull(model, settings, onCard, batch);
  if (speed) return loraBf16FromTwin(model, onCard, speed) ?? speed;
  return flopsAnchor(model, settings, batch, builtInRow("flux1-dev", false)!.secondsPerStep, "the built-in trainer's eager FLUX.1 rate");
}

/**
 * The measured all-linear row of the settings on this card; on a card without the fp8 GEMMs, the row with them times
 * the attention rows' ratio without / with them (lookupTrainSpeedPair: one kernel, one LoRA compute mode), so a card
 * that drops a lever is not timed from a slower, older path than the H200's.
 */
function allLinearAnchor(model: BaseModelRecord, onCard: TrainSettings, batch: number): Anchor | undefined {
  const exact = lookupTrainSpeed(model.id, onCard, batch, "all-linear");
  if (exact || onCard.fp8Matmul) return exact;
  const withFp8 = { ...onCard, fp8Matmul: true };
  const row = lookupTrainSpeed(model.id, withFp8, batch, "all-linear");
  const [a, b] = lookupTrainSpeedPair(model.id, withFp8, onCard, batch);
  if (!row || !a || !b) return undefined;
  const ratio = b.secondsPerStep / a.secondsPerStep;
  return {
    secondsPerStep: row.secondsPerStep * ratio,
    basis: "derived",
    config: `${row.config} x ${ratio.toFixed(2)} without fp8 GEMMs (attention preset: ${a.secondsPerStep} -> ${b.secondsPerStep} s/step)`,
    source: `${row.source}; ${b.source}`,
    ...(row.warmupBeyondSteadyS !== undefined ? { warmupBeyondSteadyS: row.warmupBeyondSteadyS } : {}),
  };
}

/**
 * Selective checkpointing on a card that drops a lever of its measured row (fp8 GEMMs, FA4): the card's full-checkpointing
 * figure times selective / full of the plan's own settings, both rows of one run (the plan takes selective only where that
 * pair is measured: plan/train-settings.ts). Undefined for other settings.
 */
function selectiveFromFull(model: BaseModelRecord, settings: TrainSettings, onCard: TrainSettings, batch: number): Anchor | undefined {
  if (!onCard.gradientCheckpointing || onCard.checkpointingMode !== "selective") return undefined;
  const [full, selective] = lookupTrainSpeedPair(model.id, { ...settings, checkpointingMode: "full" }, settings, batch);
  const base = lookupTrainSpeed(model.id, { ...onCard, checkpointingMode: "full" }, batch);
  if (!full || !selective || selective.basis !== "measured" || !base) return undefined;
  const ratio = selective.secondsPerStep / full.secondsPerStep;
  return {
    secondsPerStep: base.secondsPerStep * ratio,
    basis: "derived",
    config: `${base.config} x ${ratio.toFixed(2)} for selective checkpointing (${selective.secondsPerStep} vs ${full.secondsPerStep} s/step with full: ${selective.config})`,
    source: `${base.source}; ${selective.source}`,
    ...(base.warmupBeyondSteadyS !== undefined ? { warmupBeyondSteadyS: base.warmupBeyondSteadyS } : {}),
  };
}

/**
 * The LoRA path in bf16 where only the fp32 row of the settings was measured (FLUX.1 and klein with FA4): that row
 * times the lever's ratio in its twin pair of the same levers (knowledge/train-speed.ts LORA_BF16_TWINS: both rows of
 * one run, the same kernel where measured so, else torch's), not the fp32 figure. Undefined where the row already ran
 * bf16, for checkpointing or an fp8 base (no twin: bf16 was measured to gain nothing under full recomputation), or
 * where no twin of the levers exists.
 */
export function loraBf16FromTwin(model: BaseModelRecord, onCard: TrainSettings, speed: Anchor & Pick<SpeedLookup, "loraBf16" | "row" | "notes">): Anchor | undefined {
  if (onCard.loraCompute !== "bf16" || speed.loraBf16 || speed.basis !== "measured" || onCard.gradientCheckpointing || onCard.quantize === "fp8") return undefined;
  const base = SPEED_PROXY[model.id] ?? model.id;
  const levers = (t: (typeof LORA_BF16_TWINS)[number]) => t.levers.includes("compile") === onCard.compile && t.levers.includes("graphs") === onCard.cudaGraphs && t.levers.includes("fp8mm") === (onCard.fp8Matmul ?? false);
  const twins = LORA_BF16_TWINS.filter((t) => t.base === base && levers(t));
  const twin = twins.find((t) => (t.attention ?? "sdpa") === (onCard.attention ?? "sdpa")) ?? twins[0];
  if (!twin) return undefined;
  const ratio = twin.bf16SecondsPerStep / twin.fp32SecondsPerStep;
  const kernel = twin.attention === "fa4" ? "FA4" : "torch's attention kernel";
  return {
    ...speed,
    secondsPerStep: speed.secondsPerStep * ratio,
    basis: "derived",
    // the row's other notes (an FA4 fallback) stay; the bf16 one is what this derivation replaces
    config: `${speed.row === undefined ? speed.config : describeLookup(speed.row, (speed.notes ?? []).filter((n) => n !== LORA_FP32_NOTE))} (LoRA fp32) x ${ratio.toFixed(3)} for the LoRA in bf16 (its twin pair of these levers, ${kernel}: ${twin.fp32SecondsPerStep} -> ${twin.bf16SecondsPerStep} s/step, one run)`,
    source: `${speed.source}; ${twin.source}`,
  };
}

function flopsAnchor(model: BaseModelRecord, settings: TrainSettings, batch: number, flux1Seconds: number, what: string): Anchor {
  // FLUX.1's FLOPs per step (no checkpointing) over its measured time: the rate this trainer reaches.
  const rate = getBaseModel("flux1-dev")!.loraStepTflops.noCkpt / flux1Seconds;
  const tflops = settings.gradientCheckpointing ? model.loraStepTflops.ckpt : model.loraStepTflops.noCkpt;
  return {
    secondsPerStep: (tflops / rate) * batch,
    basis: "flops",
    config: `${tflops} TFLOP/step at ${Math.round(rate)} TFLOP/s (${what} on the H200)`,
    source: `${model.source}; ${TRAIN_SPEED_SOURCE}`,
  };
}

/**
 * Kohya, ai-toolkit and the rest: the trainer's own H200 row of this model where we measured it
 * (knowledge/trainer-speeds.ts; a trainer with no rows at all takes Kohya's as its proxy), its fp8
 * row for an fp8 base where there is one, times the built-in trainer's measured ratios on the same
 * card for what the row did not run (checkpointing; an fp8 base the trainer was not measured with
 * on FLUX.1). A model without a row: the built-in eager row of it times trainer/built-in on FLUX.1
 * (the trainer's own FLUX.1 row), and an fp8 base the trainer's own FLUX.1 fp8/bf16 ratio where it
 * has one; without a built-in row either, FLOPs at the trainer's FLUX.1 rate.
 */
function externalAnchor(model: BaseModelRecord, contract: Contract, settings: TrainSettings, batch: number): Anchor {
  const name = contract.trainer.name;
  const trainer = TRAINER_SPEEDS.find((r) => r.trainer === name)?.trainer ?? "kohya";
  const who = trainer === "kohya" ? "Kohya" : trainer;
  const proxy = name !== trainer ? ` (${name} not measured: Kohya's row)` : "";
  const fp8 = settings.quantize === "fp8" && model.family !== "sdxl";
  const base = SPEED_PROXY[model.id] ?? model.id;
  const ref = (fp8 ? trainerRow(trainer, base, "fp8") : undefined) ?? trainerRow(trainer, base, "none");
  const flux1 = trainerRow(trainer, "flux1-dev", "none")!;
  const flux1Eager = builtInRow("flux1-dev", false)!;
  let anchor: Anchor;
  if (ref) {
    const held = ref.quantize === "fp8" ? ", fp8 base" : "";
    anchor = { secondsPerStep: (ref.secondsPerStep / ref.batch) * batch, basis: proxy ? "derived" : "measured", config: `${who} ${ref.secondsPerStep} s/step, batch ${ref.batch}${held}${proxy}`, source: ref.source };
  } else {
    const eager = builtInRow(model.id, false);
    if (!eager) return flopsAnchor(model, settings, batch, flux1.secondsPerStep, `${who}'s FLUX.1 rate`);
    const ratio = flux1.secondsPerStep / flux1Eager.secondsPerStep;
    anchor = {
      secondsPerStep: eager.secondsPerStep * ratio * batch,
      basis: "derived",
      config: `built-in eager ${eager.secondsPerStep} s/step x ${ratio.toFixed(2)} (${who} / built-in on FLUX.1)`,
      source: `${eager.source}; ${flux1.source}`,
    };
  }
  const ckptRef = model.family === "sdxl" ? "sdxl" : "flux1-dev";
  if (settings.gradientCheckpointing) {
    const a = builtInRow(ckptRef, true)!;
    const b = builtInRow(ckptRef, false)!;
    anchor = { ...anchor, secondsPerStep: anchor.secondsPerStep * (a.secondsPerStep / b.secondsPerStep), basis: "derived", config: `${anchor.config} x ${(a.secondsPerStep / b.secondsPerStep).toFixed(2)} for checkpointing (built-in, ${ckptRef})` };
  }
  if (fp8 && ref?.quantize !== "fp8") anchor = withFp8Base(anchor, trainer, flux1);
  return anchor;
}

/** An fp8 base the anchor row did not run: the trainer's own FLUX.1 fp8/bf16 ratio, else the built-in trainer's. */
function withFp8Base(anchor: Anchor, trainer: TrainerSpeedRecord["trainer"], flux1: TrainerSpeedRecord): Anchor {
  const own = trainerRow(trainer, "flux1-dev", "fp8");
  if (own) {
    const ratio = own.secondsPerStep / flux1.secondsPerStep;
    return { ...anchor, secondsPerStep: anchor.secondsPerStep * ratio, basis: "derived", config: `${anchor.config} x ${ratio.toFixed(2)} for the fp8 base (${trainer}, FLUX.1)`, source: `${anchor.source}; ${own.source}` };
  }
  const rows = trainSpeedsFor("flux1-dev");
  const a = rows.find((r) => !r.attention && r.config === "fp8 base (24 GB recipe)")!;
  const b = rows.find((r) => !r.attention && r.config === "fast" && r.gradientCheckpointing)!;
  return { ...anchor, secondsPerStep: anchor.secondsPerStep * (a.secondsPerStep / b.secondsPerStep), basis: "derived", config: `${anchor.config} x ${(a.secondsPerStep / b.secondsPerStep).toFixed(2)} for the fp8 base (built-in, FLUX.1)` };
}

/** The shares of an H200 step: GEMM (from its FLOPs at the measured GEMM rate), memory traffic, fixed. */
export interface StepShares {
  compute: number;
  bandwidth: number;
  fixed: number;
}

export function stepShares(tflopsPerStep: number, h200Seconds: number, scaling: GpuScalingRecord): StepShares {
  const compute = Math.min(1, tflopsPerStep / H200_GEMM_TFLOPS.tflops / h200Seconds);
  const rest = 1 - compute;
  return { compute, bandwidth: rest * scaling.bandwidthShare, fixed: rest * (1 - scaling.bandwidthShare) };
}

/** How much longer a step takes on `gpu` than on the anchor card (1 on the anchor). */
export function gpuFactor(gpu: GpuRecord, shares: StepShares): number {
  const ref = GPUS.find((g) => g.id === ANCHOR_GPU)!;
  return shares.compute * (ref.denseBf16Tflops / gpu.denseBf16Tflops) + shares.bandwidth * (ref.memBandwidthTBs / gpu.memBandwidthTBs) + shares.fixed;
}

/** A training step's factor measured on `gpu` for this workload (knowledge/trainer-speeds.ts MEASURED_CARD_FACTORS), if any. */
export function measuredCardFactor(gpu: GpuRecord, model: BaseModelRecord, contract: Contract, settings: TrainSettings): MeasuredCardFactor | undefined {
  if (contract.trainer.name !== "diffusers") return undefined;
  return MEASURED_CARD_FACTORS.find((r) => r.gpu === gpu.id && r.base === model.id && r.cudaGraphs === settings.cudaGraphs);
}

/** SDXL steps without a whole-step CUDA graph are bound by Python and kernel launches. */
export function scalingFor(model: BaseModelRecord, contract: Contract, settings: TrainSettings): GpuScalingRecord {
  const launchBound = model.family === "sdxl" && !(contract.trainer.name === "diffusers" && settings.cudaGraphs);
  return launchBound ? GPU_SCALING.launchBound : GPU_SCALING.gpuBound;
}

export interface WalltimeOptions {
  /** Dataset images (the caching term); default dataset.expected_images, else 20. */
  images?: number;
  /** "warm": torch.compile's cache holds this configuration from an earlier run; default "cold", a first run. */
  compileCache?: "cold" | "warm";
  /** The sample path to time; default the one the worker takes (plan/sample-time.ts samplePath). */
  samplePath?: SamplePath;
  /** The mean pixel count of a step where the trainer picks its shapes per image (plan/trainer-buckets.ts); default meanTrainingArea. */
  meanArea?: number;
}

/** Images a plan assumes when neither a scan nor the contract gives a count (bench/gpu-wholerun.py's 20). */
const DEFAULT_IMAGES = 20;

/** One walltime model for every trainer: an H200 anchor (measured first), moved to `gpu` by gpuFactor, plus the run's other parts. */
export function walltimeOn(gpu: GpuRecord, model: BaseModelRecord, contract: Contract, resolution: number, steps: number, settings: TrainSettings, options: WalltimeOptions = {}): WalltimeEstimate {
  const hp = contract.hyperparameters;
  let anchor = contract.trainer.name === "diffusers" ? builtInAnchor(model, contract, settings, hp.batch_size, gpu) : externalAnchor(model, contract, settings, hp.batch_size);
  // network.targets: more modules, longer steps (plan/target-speed.ts), unless the anchor row trained them.
  const targets = anchor.targetsMeasured ? { factor: 1 } : targetSpeedFactor(model, contract, settings);
  if (targets.factor !== 1) {
    anchor = { ...anchor, secondsPerStep: anchor.secondsPerStep * targets.factor, basis: anchor.basis === "measured" ? "derived" : anchor.basis, config: `${anchor.config} ${targets.config}`, source: `${anchor.source}; ${targets.source}` };
  }
  // network.type: DoRA/LoKr/LoHa cost more per step than the LoRA the rows trained (plan/network-cost.ts, measured ratios).
  const kind = networkCost(contract, model);
  if (kind.stepTimeFactor !== 1) {
    const how = kind.measured ? "measured" : "sourced estimate";
    anchor = { ...anchor, secondsPerStep: anchor.secondsPerStep * kind.stepTimeFactor, basis: anchor.basis === "measured" ? "derived" : anchor.basis, config: `${anchor.config} x ${kind.stepTimeFactor.toFixed(2)} for network.type ${kind.type} (${how})`, source: `${anchor.source}; ${kind.source}` };
  }
  const scaling = scalingFor(model, contract, settings);
  const tflops = (settings.gradientCheckpointing ? model.loraStepTflops.ckpt : model.loraStepTflops.noCkpt) * hp.batch_size;
  const shares = stepShares(tflops, anchor.secondsPerStep, scaling);
  const onAnchor = gpu.id === ANCHOR_GPU;
  const factor = onAnchor ? 1 : gpuFactor(gpu, shares);
  // Where this card was measured for this workload, its training steps take that factor; samples and the other GPU work keep the model's.
  const measuredOnCard = onAnchor ? undefined : measuredCardFactor(gpu, model, contract, settings);
  const stepFactor = measuredOnCard?.factor ?? factor;
  // The rows are at 1024²: per-step time follows the pixel count (the mean over the training resolutions, plan/buckets.ts).
  const meanArea = options.meanArea ?? meanTrainingArea(contract, resolution);
  const secondsPerStep = anchor.secondsPerStep * hp.gradient_accumulation * (meanArea / 1024 ** 2) * stepFactor;
  const basis = onAnchor || anchor.basis === "flops" ? anchor.basis : "scaled";
  // Samples render at `resolution` (the largest): the step time scaled back from the mean training area.
  const sampling = sampleTime(contract, model, resolution, steps, secondsPerStep * (resolution ** 2 / meanArea), settings, { gpuFactor: factor, path: options.samplePath, compileCache: options.compileCache });
  const { parts, omitted } = walltimeParts({
    model,
    contract,
    settings,
    steps,
    secondsPerStep,
    warmupBeyondSteadyS: anchor.warmupBeyondSteadyS,
    gpuWork: factor * (resolution ** 2 / 1024 ** 2),
    images: options.images ?? contract.dataset.expected_images ?? DEFAULT_IMAGES,
    compileCache: options.compileCache ?? "cold",
    sampling,
  });
  const seconds = parts.reduce((sum, p) => sum + p.seconds, 0);
  return {
    gpu: gpu.id,
    label: gpu.label,
    secondsPerStep: Math.round(secondsPerStep * 1000) / 1000,
    hours: Math.round((seconds / 3600) * 100) / 100,
    seconds: Math.round(seconds),
    parts,
    ...(omitted ? { omitted } : {}),
    ...(sampling ? { samplingSeconds: sampling.seconds } : {}),
    basis,
    config: anchor.config,
    source: (sampling ? `sampling ${sampling.source}; ` : "") + (onAnchor
      ? anchor.source
      : measuredOnCard
      ? `${anchor.source}; x ${measuredOnCard.factor.toFixed(3)} measured on this card (${measuredOnCard.measured}; ${measuredOnCard.source}); samples x ${factor.toFixed(2)} by GPU_SCALING's model`
      : `${anchor.source}; x ${factor.toFixed(2)} = ${shares.compute.toFixed(2)} (GEMM share) x bf16 ${GPUS.find((g) => g.id === ANCHOR_GPU)!.denseBf16Tflops}/${gpu.denseBf16Tflops} + ${shares.bandwidth.toFixed(2)} x bandwidth ${GPUS.find((g) => g.id === ANCHOR_GPU)!.memBandwidthTBs}/${gpu.memBandwidthTBs} + ${shares.fixed.toFixed(2)} fixed (${DENSE_BF16_SOURCE}; ${MEM_BANDWIDTH_SOURCE}; ${H200_GEMM_TFLOPS.source}; ${scaling.source})`),
  };
}

/**
 * The mean pixel count of a step: with multi-resolution buckets each image trains once per
 * resolution, so steps split evenly over them; every bucket's area is at most its resolution²
 * (the VRAM peak is sized at the largest, dataset.resolution).
 */
export function meanTrainingArea(contract: Contract, resolution: number): number {
  const all = trainingResolutions(contract, resolution);
  return all.reduce((sum, r) => sum + r * r, 0) / all.length;
}
