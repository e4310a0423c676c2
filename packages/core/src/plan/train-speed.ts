import type { BaseModelId } from "../knowledge/base-models.js";
import { trainSpeedsFor, TRAIN_SPEED_SOURCE, type TrainSpeedRecord } from "../knowledge/train-speed.js";
import type { AttentionKernel } from "../knowledge/attention.js";
import { GPU_SPEED_WARMUP_STEPS } from "../knowledge/whole-run.js";
import type { VramSettings } from "./vram-model.js";

/** The built-in trainer's s/step on the H200 at 1024², for a configuration, from TRAIN_SPEEDS. */
export interface SpeedLookup {
  /** Seconds per optimizer step of `batch` samples, H200, 1024². */
  secondsPerStep: number;
  /** measured: a row of the table; derived: a row of this model times FLUX.1's measured lever ratios. */
  basis: "measured" | "derived";
  /** The row(s) used, in words, with the source. */
  config: string;
  source: string;
  /** A measured row's first steps beyond steady ones (compile, graph capture), seconds: its warmupS less GPU_SPEED_WARMUP_STEPS steady steps. */
  warmupBeyondSteadyS?: number;
  /** The row ran with the LoRA path in bf16 (the `lora_bf16` lever); absent: fp32. */
  loraBf16?: true;
  /** A measured row's own description, before `notes` (config is the two together). */
  row?: string;
  /** What the figure stands in for, in words: e.g. LORA_FP32_NOTE, FA4_SDPA_NOTE. A reader that derives a better figure drops its note by identity. */
  notes?: readonly string[];
}

/** The bf16 LoRA path asked for, the fp32 row used (exactRow). */
export const LORA_FP32_NOTE = "LoRA computed in fp32 there: bf16 not measured in this configuration";
/** FlashAttention-4 asked for, torch's kernel's row used (lookupTrainSpeed). */
export const FA4_SDPA_NOTE = "torch's attention kernel: FA4 is not measured in this configuration";

/** A measured lookup's config: its row, then each note in parentheses. */
export function describeLookup(row: string, notes: readonly string[]): string {
  return [row, ...notes.map((n) => `(${n})`)].join(" ");
}

/** The lookup with one more note (config rebuilt from its row and notes; a lookup without a row keeps its config and gains the note). */
function noted(l: SpeedLookup, note: string): SpeedLookup {
  const notes = [...(l.notes ?? []), note];
  return { ...l, notes, config: l.row === undefined ? `${l.config} (${note})` : describeLookup(l.row, notes) };
}

/** FLUX.1 [dev] is the reference the lever ratios of unmeasured combinations come from. */
const REFERENCE: BaseModelId = "flux1-dev";
const DERIVABLE: ReadonlySet<BaseModelId> = new Set(["flux1-dev", "flux1-schnell", "flux2-klein-4b", "flux2-klein-9b"]);

/** The LoRA's modules a row trained: the attention preset (the built-in default; every lookup but an all-linear walltime's) or every linear. */
export type SpeedTargets = "attention" | "all-linear";

function find(rows: readonly TrainSpeedRecord[], ckpt: boolean, fp8: boolean, compile: boolean, graphs: boolean, batch: number, fp8mm = false, selective = false, attention: AttentionKernel = "sdpa", loraBf16 = false, targets: SpeedTargets = "attention"): TrainSpeedRecord | undefined {
  const matching = rows.filter(
    (r) =>
      (r.targets ?? "attention") === targets &&
      (r.attention ?? "sdpa") === attention &&
      r.levers.includes("lora_bf16") === loraBf16 &&
      r.gradientCheckpointing === ckpt &&
      (r.checkpointingMode === "selective") === (ckpt && selective) &&
      (r.quantize === "fp8") === fp8 &&
      r.levers.includes("compile") === compile &&
      r.levers.includes("graphs") === graphs &&
      r.levers.includes("fp8mm") === fp8mm &&
      !r.levers.includes("cudnn_sdpa"),
  );
  if (matching.length === 0) return undefined;
  // The same batch if measured, else the nearest; among equals the faster (the worker uses the fast levers).
  const byBatch = (r: TrainSpeedRecord) => Math.abs(r.batch - batch);
  const best = Math.min(...matching.map(byBatch));
  return matching.filter((r) => byBatch(r) === best).sort((a, b) => a.secondsPerStep - b.secondsPerStep)[0];
}

function describe(r: TrainSpeedRecord): string {
  return `${r.config}${r.attention === "fa4" ? " + FA4" : ""}${r.targets ? `, ${r.targets}` : ""}, batch ${r.batch}${r.gradientCheckpointing ? ", checkpointed" : ""}: ${r.secondsPerStep} s/step`;
}

/**
 * s/step of the built-in trainer on the H200 for `settings` at `batch` (per-sample scaled from the
 * nearest measured batch). Combinations not in the table (klein with checkpointing, fp8 without)
 * take this model's measured no-checkpointing bf16 row times FLUX.1's measured ratio for the
 * lever (FLUX-class models only). Undefined for models and combinations never measured.
 * With attention "fa4": its measured row, else torch's kernel's figure (FA4 only ever measured faster).
 * With targets "all-linear": the measured all-linear row of these settings only (FA4's, else torch's kernel's),
 * undefined where none was measured (the caller then takes the attention row x the preset's ratio, plan/target-speed.ts).
 */
export function lookupTrainSpeed(base: BaseModelId, settings: VramSettings, batch: number, targets: SpeedTargets = "attention"): SpeedLookup | undefined {
  const rows = trainSpeedsFor(base);
  if (rows.length === 0) return undefined;
  if (targets === "all-linear") {
    const measured = exactRow(base, settings, batch, "all-linear");
    if (measured || settings.attention !== "fa4") return measured;
    const sdpa = exactRow(base, { ...settings, attention: "sdpa" }, batch, "all-linear");
    return sdpa && noted(sdpa, FA4_SDPA_NOTE);
  }
  if (settings.attention === "fa4") {
    const measured = exactRow(base, settings, batch);
    if (measured) return measured;
    const sdpa = lookupTrainSpeed(base, { ...settings, attention: "sdpa" }, batch);
    return sdpa && noted(sdpa, FA4_SDPA_NOTE);
  }
  const ckpt = settings.gradientCheckpointing;
  const fp8 = settings.quantize === "fp8";
  const perSample = (r: TrainSpeedRecord) => (r.secondsPerStep / r.batch) * batch;
  const selective = ckpt && settings.checkpointingMode === "selective";
  const exact = exactRow(base, settings, batch);
  if (exact) return exact;
  // fp8 GEMMs are only measured for FLUX.1 (an unmeasured model never gets them: train-settings.ts)
  if (settings.fp8Matmul) return undefined;
  // FLUX.1's lever ratios carry over to the FLUX-class transformers only, not to SDXL's UNet.
  if (!DERIVABLE.has(base)) return undefined;
  const start = find(rows, false, false, settings.compile, settings.cudaGraphs, batch);
  if (!start) return undefined;
  const ref = trainSpeedsFor(REFERENCE);
  let factor = 1;
  const parts = [describe(start)];
  if (ckpt) {
    const a = find(ref, true, false, settings.compile, false, 1, false, selective);
    const b = find(ref, false, false, settings.compile, false, 1);
    if (!a || !b) return undefined;
    factor *= a.secondsPerStep / b.secondsPerStep;
    parts.push(`x ${(a.secondsPerStep / b.secondsPerStep).toFixed(2)} for checkpointing (FLUX.1)`);
  }
  if (fp8) {
    const a = find(ref, true, true, true, false, 1);
    const b = find(ref, true, false, true, false, 1);
    if (!a || !b) return undefined;
    factor *= a.secondsPerStep / b.secondsPerStep;
    parts.push(`x ${(a.secondsPerStep / b.secondsPerStep).toFixed(2)} for the fp8 base (FLUX.1)`);
  }
  return { secondsPerStep: perSample(start) * factor, basis: "derived", config: parts.join(" "), source: TRAIN_SPEED_SOURCE };
}

/**
 * The measured row of exactly these settings (attention included), per-sample scaled to `batch`. With the LoRA path
 * in bf16 (settings.loraCompute): its row where measured, else the fp32 row (the bf16 path was only measured faster),
 * said in the config. A bf16 row's warm-up is its fp32 twin's where there is one: the lever changes the LoRA's dtype,
 * not what is compiled, and the bf16 rows were timed after their twin compiled the same blocks in that process.
 */
function exactRow(base: BaseModelId, settings: VramSettings, batch: number, targets: SpeedTargets = "attention"): SpeedLookup | undefined {
  const ckpt = settings.gradientCheckpointing;
  const selective = ckpt && settings.checkpointingMode === "selective";
  const rowOf = (loraBf16: boolean) =>
    find(trainSpeedsFor(base), ckpt, settings.quantize === "fp8", settings.compile, settings.cudaGraphs, batch, settings.fp8Matmul ?? false, selective, settings.attention ?? "sdpa", loraBf16, targets);
  const fp32 = rowOf(false);
  const bf16 = settings.loraCompute === "bf16" ? rowOf(true) : undefined;
  const r = bf16 ?? fp32;
  if (!r) return undefined;
  const warmRow = bf16 && fp32?.warmupS !== undefined ? fp32 : r;
  const warm = warmRow.warmupS === undefined ? {} : { warmupBeyondSteadyS: Math.max(0, warmRow.warmupS - GPU_SPEED_WARMUP_STEPS * warmRow.secondsPerStep) };
  const notes = settings.loraCompute === "bf16" && !bf16 ? [LORA_FP32_NOTE] : [];
  return { secondsPerStep: (r.secondsPerStep / r.batch) * batch, basis: "measured", config: describeLookup(describe(r), notes), row: describe(r), notes, source: r.source, ...warm, ...(bf16 ? { loraBf16: true as const } : {}) };
}

/**
 * Two configurations to compare (with and without a lever), measured alike: both with FA4 where both
 * FA4 rows exist, else both with torch's kernel; both with the LoRA path in bf16 where both bf16 rows exist,
 * else both fp32. So a lever's gain never mixes kernels or LoRA compute modes.
 */
export function lookupTrainSpeedPair(base: BaseModelId, a: VramSettings, b: VramSettings, batch: number): [SpeedLookup | undefined, SpeedLookup | undefined] {
  if (a.loraCompute === "bf16" && b.loraCompute === "bf16") {
    const both = kernelPair(base, a, b, batch);
    if (both[0]?.loraBf16 && both[1]?.loraBf16) return both;
  }
  return kernelPair(base, { ...a, loraCompute: "fp32" }, { ...b, loraCompute: "fp32" }, batch);
}

function kernelPair(base: BaseModelId, a: VramSettings, b: VramSettings, batch: number): [SpeedLookup | undefined, SpeedLookup | undefined] {
  if (a.attention === "fa4" && b.attention === "fa4") {
    const fa = [exactRow(base, a, batch), exactRow(base, b, batch)] as const;
    if (fa[0] && fa[1]) return [fa[0], fa[1]];
  }
  const sdpa = (s: VramSettings) => lookupTrainSpeed(base, { ...s, attention: "sdpa" }, batch);
  return [sdpa(a), sdpa(b)];
}

/**
 * The settings a measured row ran with, from its levers: the one reading of TrainSpeedRecord.levers that the
 * plan-vs-measured table (bench/plan-vs-measured.ts) and the calibration tests share, so a new lever is read alike.
 */
export function speedRowSettings(r: TrainSpeedRecord): Required<Omit<VramSettings, "checkpointingMode">> & Pick<VramSettings, "checkpointingMode"> & { channelsLast: boolean } {
  return {
    gradientCheckpointing: r.gradientCheckpointing,
    checkpointingMode: r.checkpointingMode ?? (r.gradientCheckpointing ? "full" : "off"),
    compile: r.levers.includes("compile"),
    cudaGraphs: r.levers.includes("graphs"),
    quantize: r.quantize,
    fp8Matmul: r.levers.includes("fp8mm"),
    attention: r.attention ?? "sdpa",
    loraCompute: r.levers.includes("lora_bf16") ? "bf16" : "fp32",
    channelsLast: r.levers.includes("channels_last"),
  };
}
