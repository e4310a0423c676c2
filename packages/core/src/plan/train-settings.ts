import type { Contract } from "../contract/schema.js";
import { baseQuantizeOf, quantizePinned } from "../contract/base-quantize.js";
import { getBaseModel, type BaseModelRecord } from "../knowledge/base-models.js";
import { BUILTIN_TRAINER, builtinArchOf } from "../knowledge/builtin-trainer.js";
import { FP8_ROWWISE_SOURCE, FP8_TENSOR_CORES_SOURCE, findGpu } from "../knowledge/gpus.js";
import { COMPILE_WARMUP_S, SPEED_PROXY, TRAIN_SPEED_SOURCE } from "../knowledge/train-speed.js";
import { VRAM_MODEL, VRAM_SELECTIVE_ACTIVATIONS } from "../knowledge/vram.js";
import { bucketShapes, resolveBuckets } from "./buckets.js";
import type { AttentionKernel } from "../knowledge/attention.js";
import { attentionFor } from "./attention.js";
import { loraComputeFor } from "./lora-compute.js";
import { sampleMergeFor, type SampleMergeKind } from "./sample-merge.js";
import type { LoraCompute } from "../knowledge/lora-compute.js";
import { lookupTrainSpeed, lookupTrainSpeedPair, type SpeedLookup } from "./train-speed.js";
import { estimateVramWith, type VramSettings } from "./vram-model.js";

/** One decided setting and why, for `loraspec plan` (human and --json). */
export interface SettingChoice {
  setting: "gradient_checkpointing" | "checkpointing_mode" | "compile" | "cuda_graphs" | "channels_last" | "quantize" | "fp8_matmul" | "attention" | "lora_compute" | "sample_merge";
  value: boolean | string;
  why: string;
  source: string;
}

export interface TrainSettings extends VramSettings {
  /** fp8 GEMMs for the frozen base (the worker's fp8_matmul): on where measured faster and the card has fp8 tensor cores. */
  fp8Matmul: boolean;
  /** The attention kernel (the worker's attention): FlashAttention-4 where measured faster and the card runs it (plan/attention.ts). */
  attention: AttentionKernel;
  /** The dtype the LoRA path computes in (the worker's lora_compute; plan/lora-compute.ts): bf16 over fp32 master weights where measured. */
  loraCompute: LoraCompute;
  /** How in-training samples merge the LoRA (the worker's sample_merge; plan/sample-merge.ts): buffers, per call, or none. */
  sampleMerge: SampleMergeKind;
  /** NHWC weights for SDXL's UNet: on together with its CUDA graph (the measured configuration). */
  channelsLast: boolean;
  choices: SettingChoice[];
  /**
   * False when hardware.gpu names no known CUDA GPU. The request still carries every lever as the
   * plan decided it; the worker turns off what the device it finds cannot run, with a coded warning.
   */
  cudaKnown: boolean;
  /** The VRAM ceiling the choice was made against (the lower of limits.vram_ceiling_gb and hardware.vram_gb). */
  ceiling?: { gb: number; field: string };
}

export interface TrainSettingsOptions {
  /** Resolved steps (the plan's); compile is chosen only when the run repays its warm-up. */
  steps?: number;
  resolution?: number;
}

const CONTRACT = "contract: hyperparameters.gradient_checkpointing";

/**
 * The settings that trade speed for memory, resolved once for every reader (plan, VRAM estimate,
 * compilers, OOM fallback). A value the contract gives always wins. For the built-in trainer the
 * rest is the fastest measured configuration (knowledge/train-speed.ts) whose estimated peak fits
 * the VRAM ceiling; without a ceiling, checkpointing stays on. Other trainers keep checkpointing on.
 */
export function resolveTrainSettings(contract: Contract, options: TrainSettingsOptions = {}): TrainSettings {
  const hp = contract.hyperparameters;
  const given = hp.gradient_checkpointing;
  const model = getBaseModel(contract.base.model);
  const quantize = baseQuantizeOf(contract);
  if (contract.trainer.name !== "diffusers" || !model || (quantize !== "none" && quantize !== "fp8")) {
    const ckpt = given ?? true;
    return {
      gradientCheckpointing: ckpt,
      checkpointingMode: ckpt ? "full" : "off",
      compile: false,
      cudaGraphs: false,
      quantize,
      fp8Matmul: false,
      attention: "sdpa",
      loraCompute: "fp32",
      sampleMerge: "none",
      channelsLast: false,
      cudaKnown: findGpu(contract.hardware.gpu) !== undefined,
      choices: [
        given === undefined
          ? { setting: "gradient_checkpointing", value: true, why: `on: the safe default for ${contract.trainer.name}`, source: VRAM_MODEL.source }
          : { setting: "gradient_checkpointing", value: ckpt, why: "as the contract says", source: CONTRACT },
      ],
    };
  }
  return resolveBuiltIn(contract, model, options);
}

/** hyperparameters.gradient_checkpointing as resolved (for readers that need only this). */
export function gradientCheckpointingOf(contract: Contract, options: TrainSettingsOptions = {}): boolean {
  return resolveTrainSettings(contract, options).gradientCheckpointing;
}

interface Candidate extends VramSettings {
  fp8Matmul: boolean;
  attention: AttentionKernel;
  totalGb: number;
  choices: SettingChoice[];
}

function resolveBuiltIn(contract: Contract, model: BaseModelRecord, options: TrainSettingsOptions): TrainSettings {
  const hp = contract.hyperparameters;
  const given = hp.gradient_checkpointing;
  const resolution = options.resolution ?? contract.dataset.resolution ?? model.nativeResolution;
  const steps = options.steps ?? hp.steps;
  const limits = [
    contract.limits.vram_ceiling_gb !== undefined ? { gb: contract.limits.vram_ceiling_gb, field: "limits.vram_ceiling_gb" } : undefined,
    contract.hardware.vram_gb !== undefined ? { gb: contract.hardware.vram_gb, field: "hardware.vram_gb" } : undefined,
  ].filter((x): x is { gb: number; field: string } => !!x);
  const ceiling = limits.length ? limits.reduce((a, b) => (b.gb < a.gb ? b : a)) : undefined;

  const shapes = shapesOf(contract, resolution);
  const { attention, choice: attentionChoice } = attentionFor(contract, model);
  const { loraCompute } = loraComputeFor(contract, model);
  const build = (ckpt: boolean, quantize: "none" | "fp8", mode: "full" | "selective" = "full"): Candidate => {
    const choices: SettingChoice[] = [{ ...attentionChoice }];
    const checkpointingMode = ckpt ? mode : "off";
    const graphs = cudaGraphsFor(contract, model, ckpt, shapes, loraCompute, choices);
    const compile = compileFor(model, ckpt, quantize, hp.batch_size, steps, shapes, graphs, attention, loraCompute, choices);
    const fp8Matmul = fp8MatmulFor(contract, model, ckpt, quantize, compile, hp.batch_size, attention, choices);
    const settings = { gradientCheckpointing: ckpt, checkpointingMode, compile, cudaGraphs: graphs, quantize, fp8Matmul, attention, loraCompute } as const;
    return { ...settings, totalGb: estimateVramWith(contract, model, resolution, settings).totalGb, choices };
  };
  const speedOf = (c: VramSettings) => lookupTrainSpeed(model.id, c, hp.batch_size);
  const sps = (c: VramSettings) => {
    const s = speedOf(c);
    return s ? `${round2(s.secondsPerStep)} s/step` : "not measured";
  };

  // Written (none included), base.quantize is the contract's pin; left out, the plan may hold the base in fp8.
  const asked = baseQuantizeOf(contract) as "none" | "fp8";
  const pinned = quantizePinned(contract);
  if (!ceiling) {
    const c = build(given ?? true, asked);
    const why =
      given === undefined ? "on: no VRAM ceiling given (limits.vram_ceiling_gb or hardware.vram_gb), so the safe default" : "as the contract says";
    return finish(c, { setting: "gradient_checkpointing", value: c.gradientCheckpointing, why, source: given === undefined ? VRAM_MODEL.source : CONTRACT }, asked, contract);
  }

  // Fastest first: no checkpointing, then selective checkpointing (where built), then full, then
  // (FLUX-class only, when nothing else fits) an fp8 base.
  const selectiveOk = selectiveCheckpointingFor(model);
  const candidates: Candidate[] = [];
  for (const ckpt of given === undefined ? [false, true] : [given]) {
    if (ckpt && selectiveOk) candidates.push(build(true, asked, "selective"));
    candidates.push(build(ckpt, asked));
  }
  // DoRA/LoKr/LoHa read the base layer's weight, which the worker's fp8 linear does not keep.
  const fp8Allowed = model.family !== "sdxl" && contract.network.type === "lora";
  if (!pinned && asked === "none" && fp8Allowed) {
    if ((given ?? true) && selectiveOk) candidates.push(build(true, "fp8", "selective"));
    candidates.push(build(given ?? true, "fp8"));
  }
  // Selective checkpointing only where a measured pair of this configuration has it faster than full
  // recomputation (knowledge/train-speed.ts: FLUX.1 compiled with fp8 GEMMs, the LoRA in bf16 and FA4).
  const pairOf = (c: Candidate): SelectivePair => {
    const [full, selective] = lookupTrainSpeedPair(model.id, { ...c, checkpointingMode: "full" }, c, hp.batch_size);
    return { full, selective: selective?.basis === "measured" ? selective : undefined };
  };
  const faster = (p: SelectivePair) => !!p.full && !!p.selective && p.selective.secondsPerStep < p.full.secondsPerStep;
  const fits = candidates.filter((c) => c.checkpointingMode !== "selective" || faster(pairOf(c))).find((c) => c.totalGb <= ceiling.gb);
  const at = `${ceiling.gb} GB (${ceiling.field})`;
  if (fits?.gradientCheckpointing) fits.choices.push(checkpointingModeChoice(model, fits, candidates, ceiling, pairOf));
  if (!fits) {
    const c = build(given ?? true, asked);
    const smallest = Math.min(...candidates.map((x) => x.totalGb));
    const why = `${given === undefined ? "on" : "as the contract says"}: no measured configuration fits ${at}; the smallest needs ~${smallest} GB`;
    const out = finish(c, { setting: "gradient_checkpointing", value: c.gradientCheckpointing, why, source: VRAM_MODEL.source }, asked, contract);
    const pin = out.choices.find((x) => x.setting === "quantize");
    if (pin && pinned && asked === "none") {
      // The plan keeps the pin; check's vram-below-profile reports the ceiling (with the fp8 figure the plan did not take).
      const fp8 = fp8Allowed ? build(given ?? true, "fp8").totalGb : undefined;
      pin.why += `: ~${c.totalGb} GB, over ${at}${fp8 !== undefined ? `; an fp8 base would need ~${fp8} GB (remove base.quantize to let the plan choose it)` : ""}; check reports vram-below-profile`;
    }
    return { ...out, ceiling };
  }
  let why: string;
  if (given !== undefined) why = `as the contract says (~${fits.totalGb} GB, fits ${at})`;
  else if (!fits.gradientCheckpointing) {
    const ck = candidates.find((c) => c.gradientCheckpointing && c.checkpointingMode === "full" && c.quantize === fits.quantize);
    why = `off: the peak without it (~${fits.totalGb} GB) fits ${at}; on the H200 ${sps(fits)} vs ${ck ? sps(ck) : "?"} with it`;
  } else {
    const noCk = candidates.find((c) => !c.gradientCheckpointing);
    why = noCk
      ? `on: without it the peak is ~${noCk.totalGb} GB, over ${at}; with it ~${fits.totalGb} GB`
      : `as the contract says (~${fits.totalGb} GB, fits ${at})`;
  }
  // VRAM_MODEL.source names the bench data the speeds come from too.
  const source = VRAM_MODEL.source;
  const out = finish(fits, { setting: "gradient_checkpointing", value: fits.gradientCheckpointing, why, source: given === undefined ? source : CONTRACT }, asked, contract);
  if (fits.quantize !== asked) {
    const bf16 = candidates.filter((c) => c.quantize === asked).map((c) => c.totalGb);
    out.choices.push({
      setting: "quantize",
      value: "fp8",
      why: `fp8: only an fp8 base fits ${at} (~${fits.totalGb} GB; bf16 needs ~${Math.min(...bf16)} GB). The frozen block linears are held in fp8 e4m3 with per-row scales; the bench's 50-step loss curve matched bf16 within 0.01%`,
      source: TRAIN_SPEED_SOURCE,
    });
  }
  return { ...out, ceiling };
}

function finish(c: Candidate, ckpt: SettingChoice, asked: string, contract: Contract): TrainSettings {
  const cudaKnown = findGpu(contract.hardware.gpu) !== undefined;
  const choices = [ckpt, ...c.choices];
  if (!cudaKnown) {
    for (const x of choices) {
      if (((x.setting === "compile" || x.setting === "cuda_graphs" || x.setting === "fp8_matmul") && x.value === true) || (x.setting === "attention" && x.value === "fa4")) {
        x.why += "; hardware.gpu names no known CUDA GPU: the worker turns it off, with a coded warning, where the device it finds cannot run it";
      }
    }
  }
  if (c.cudaGraphs) {
    choices.push({ setting: "channels_last", value: true, why: "on: NHWC weights for the UNet's convolutions (cuDNN's fast path), measured together with the CUDA graph", source: TRAIN_SPEED_SOURCE });
  }
  if (c.quantize === asked && asked === "fp8") {
    choices.push({ setting: "quantize", value: "fp8", why: "as the contract says (base.quantize)", source: "contract: base.quantize" });
  } else if (c.quantize === "none" && quantizePinned(contract)) {
    choices.push({ setting: "quantize", value: "none", why: "as the contract says (base.quantize: none): a bf16 base, kept whatever the VRAM ceiling", source: "contract: base.quantize" });
  }
  const { gradientCheckpointing, compile, cudaGraphs, quantize, fp8Matmul, attention } = c;
  const lora = loraComputeFor(contract, getBaseModel(contract.base.model)!); // finish runs for the built-in trainer's known models only
  choices.push(lora.choice);
  const merge = sampleMergeFor(contract, builtinArchOf(contract.base.model).arch, { quantize, fp8Matmul, compile });
  if (merge.choice) choices.push(merge.choice);
  const checkpointingMode = c.checkpointingMode ?? (gradientCheckpointing ? "full" : "off");
  if (gradientCheckpointing && !choices.some((x) => x.setting === "checkpointing_mode")) {
    choices.push({ setting: "checkpointing_mode", value: "full", why: "full: each block's forward is recomputed (the safe default without a VRAM ceiling that selective checkpointing fits)", source: VRAM_MODEL.source });
  }
  return { gradientCheckpointing, checkpointingMode, compile, cudaGraphs, quantize, fp8Matmul, attention, loraCompute: lora.loraCompute, sampleMerge: merge.sampleMerge, channelsLast: cudaGraphs, cudaKnown, choices };
}

/** Selective checkpointing is built (and checked against eager) for this model's worker arch, with an activation estimate. */
function selectiveCheckpointingFor(model: BaseModelRecord): boolean {
  const arches: readonly string[] = BUILTIN_TRAINER.selectiveCheckpointingArches;
  return model.id in BUILTIN_TRAINER.bases && arches.includes(builtinArchOf(model.id).arch) && VRAM_SELECTIVE_ACTIVATIONS[model.family] !== undefined;
}

interface SelectivePair {
  /** Full checkpointing in the candidate's configuration, and selective checkpointing where a row of it was measured. */
  full?: SpeedLookup;
  selective?: SpeedLookup;
}

/** Why checkpointing, when on, is selective or full (the fitting candidate against the others). */
function checkpointingModeChoice(model: BaseModelRecord, fits: Candidate, candidates: Candidate[], ceiling: { gb: number; field: string }, pairOf: (c: Candidate) => SelectivePair): SettingChoice {
  const at = `${ceiling.gb} GB (${ceiling.field})`;
  const rec = VRAM_SELECTIVE_ACTIVATIONS[model.family];
  const full = candidates.find((c) => c.checkpointingMode === "full" && c.quantize === fits.quantize);
  const selective = candidates.find((c) => c.checkpointingMode === "selective" && c.quantize === fits.quantize);
  if (!rec || !selective) {
    const why = `full: selective checkpointing is built for the worker arch ${BUILTIN_TRAINER.selectiveCheckpointingArches.join(", ")} only`;
    return { setting: "checkpointing_mode", value: "full", why, source: VRAM_MODEL.source };
  }
  const pair = pairOf(selective);
  const source = [...new Set([`${rec.source}${rec.verified === false ? " (estimate: verified false)" : ""}`, ...(pair.selective ? [pair.selective.source] : []), ...(pair.full ? [pair.full.source] : [])])].join("; ");
  const speeds = pair.full && pair.selective ? `${round3(pair.selective.secondsPerStep)} vs ${round3(pair.full.secondsPerStep)} s/step on the H200` : undefined;
  if (fits.checkpointingMode === "selective") {
    return {
      setting: "checkpointing_mode",
      value: "selective",
      why: `selective: ${rec.kept} kept, every matmul recomputed: ~${fits.totalGb} GB fits ${at}; ${speeds} with full checkpointing (~${full?.totalGb ?? "?"} GB), which recomputes every block's forward`,
      source,
    };
  }
  const config = `${selective.compile ? "compiled" : "no compile"}, fp8 GEMMs ${selective.fp8Matmul ? "on" : "off"}, ${selective.attention} attention, the LoRA in ${selective.loraCompute ?? "fp32"}${selective.quantize === "fp8" ? ", an fp8 base" : ""}`;
  const why =
    selective.totalGb > ceiling.gb
      ? `full: selective checkpointing (${rec.kept} kept) would need ~${selective.totalGb} GB, over ${at}`
      : !pair.selective || !pair.full
        ? `full: selective checkpointing is not measured in this configuration (${config}), so not known to be faster`
        : `full: selective checkpointing is not faster in this configuration (${speeds})`;
  return { setting: "checkpointing_mode", value: "full", why, source };
}

/**
 * How many latent shapes the run trains (its aspect buckets, plan/buckets.ts). A bucket set the
 * contract cannot have counts as several: the compiler refuses it anyway, naming the field.
 */
function shapesOf(contract: Contract, resolution: number): number {
  if (contract.dataset.aspect !== "buckets") return 1;
  try {
    return bucketShapes(resolveBuckets(contract, resolution));
  } catch {
    return 2;
  }
}

const SHAPES_SOURCE = "ours: a captured CUDA graph replays fixed tensor shapes; torch.compile guards on shapes and recompiles (or goes dynamic) per new one (plan/buckets.ts)";

/** SDXL's whole-step CUDA graph: needs no checkpointing, no accumulation, plain AdamW (its capturable fused step) and one latent shape. */
function cudaGraphsFor(contract: Contract, model: BaseModelRecord, ckpt: boolean, shapes: number, loraCompute: LoraCompute, choices: SettingChoice[]): boolean {
  if (model.family !== "sdxl") return false;
  const hp = contract.hyperparameters;
  const blockers = [
    shapes > 1 ? `${shapes} bucket shapes (a captured graph replays one shape)` : undefined,
    ckpt ? "gradient checkpointing is on" : undefined,
    hp.gradient_accumulation !== 1 ? `gradient_accumulation is ${hp.gradient_accumulation}` : undefined,
    hp.optimizer !== "adamw" ? `the optimizer is ${hp.optimizer}, not adamw` : undefined,
    hp.shuffle_tags ? "shuffle_tags encodes the captions each step (text encoders outside the graph)" : undefined,
    contract.hardware.kind === "local" && contract.hardware.gpus * contract.hardware.nodes > 1
      ? `${contract.hardware.gpus * contract.hardware.nodes} GPUs (the gradients are all-reduced between steps)`
      : undefined,
  ].filter((x): x is string => !!x);
  const on = blockers.length === 0;
  const graph = lookupTrainSpeed(model.id, { gradientCheckpointing: false, compile: false, cudaGraphs: true, quantize: "none", loraCompute }, hp.batch_size);
  const eager = lookupTrainSpeed(model.id, { gradientCheckpointing: false, compile: false, cudaGraphs: false, quantize: "none", loraCompute }, hp.batch_size);
  const gain = graph && eager ? ` (${round2(graph.secondsPerStep)} vs ${round2(eager.secondsPerStep)} s/step eager on the H200)` : "";
  choices.push({
    setting: "cuda_graphs",
    value: on,
    why: on ? `on: SDXL at batch ${hp.batch_size} is launch-bound; one graph replays the whole step${gain}` : `off: ${blockers.join(", ")}`,
    source: [...new Set([graph?.source ?? TRAIN_SPEED_SOURCE, eager?.source ?? TRAIN_SPEED_SOURCE, ...(shapes > 1 ? [SHAPES_SOURCE] : [])])].join("; "),
  });
  return on;
}

/**
 * Regional compile when the run repays the first compile: steps x (without − with compile s/step) > warm-up.
 * Under SDXL's CUDA graph the comparison is the graph with and without compiled blocks (the graph then
 * replays inductor's fused kernels); SDXL without the graph never compiles (the graph is its speed-up).
 */
function compileFor(model: BaseModelRecord, ckpt: boolean, quantize: "none" | "fp8", batch: number, steps: number | undefined, shapes: number, graphs: boolean, attention: AttentionKernel, loraCompute: LoraCompute, choices: SettingChoice[]): boolean {
  const warm = COMPILE_WARMUP_S[SPEED_PROXY[model.id] ?? model.id];
  const say = (value: boolean, why: string, source = TRAIN_SPEED_SOURCE) => {
    choices.push({ setting: "compile", value, why, source });
    return value;
  };
  if (!warm) return say(false, `off: torch.compile is not measured for ${model.label}`);
  if (model.family === "sdxl" && !graphs) return say(false, `off: SDXL's first compile takes ${warm.seconds} s; its speed-up comes from the CUDA graph, which is off`);
  if (shapes > 1) {
    return say(false, `off: ${shapes} bucket shapes would each recompile the blocks (~${warm.seconds} s per shape measured for one) or force dynamic shapes, which are not measured`, SHAPES_SOURCE);
  }
  const base = { gradientCheckpointing: ckpt, cudaGraphs: graphs, quantize, attention, loraCompute };
  const [eager, fast] = lookupTrainSpeedPair(model.id, { ...base, compile: false }, { ...base, compile: true }, batch);
  if (!eager || !fast) return say(false, `off: no measurement of this configuration with and without compile for ${model.label}`);
  const saved = eager.secondsPerStep - fast.secondsPerStep;
  if (steps === undefined) return say(false, "off: the number of steps is not resolved");
  const total = steps * saved;
  const under = graphs ? " under the CUDA graph" : "";
  const numbers = `${steps} steps x ${round3(saved)} s saved (${round3(eager.secondsPerStep)} -> ${round3(fast.secondsPerStep)} s/step${under} on the H200) = ${Math.round(total)} s vs ${warm.seconds} s first-compile warm-up`;
  const rows = [...new Set([eager.source, fast.source, warm.source])].join("; ");
  return total > warm.seconds ? say(true, `on: ${numbers}`, rows) : say(false, `off: the run is too short to repay it: ${numbers}`, rows);
}

/**
 * fp8 GEMMs for the frozen base (forward and input gradient; with an fp8 base the forward only):
 * on where a measured row with them beats the same configuration without them (FLUX.1 compiled),
 * and torch's row-wise scaled fp8 GEMM runs on the card (Hopper). A card the contract does not
 * name: on, left to the worker (which tries one small GEMM on the device first).
 */
function fp8MatmulFor(contract: Contract, model: BaseModelRecord, ckpt: boolean, quantize: "none" | "fp8", compile: boolean, batch: number, attention: AttentionKernel, choices: SettingChoice[]): boolean {
  const say = (value: boolean, why: string, source = TRAIN_SPEED_SOURCE) => {
    choices.push({ setting: "fp8_matmul", value, why, source });
    return value;
  };
  if (contract.network.type !== "lora") return say(false, `off: ${contract.network.type} reads the base layer's weight, which the fp8 linear does not keep (worker train/network.py)`, "ours: worker/loraspec_worker/speed.py Fp8Linear (weight_fp8 only); peft DoRA/LoKr/LoHa layers read base_layer.weight");
  if (!compile) return model.family === "sdxl" ? false : say(false, "off: measured only together with compile, which is off");
  const base = { gradientCheckpointing: ckpt, compile: true, cudaGraphs: false, quantize, attention };
  const [without, withIt] = lookupTrainSpeedPair(model.id, base, { ...base, fp8Matmul: true }, batch);
  if (!withIt || withIt.basis !== "measured" || !without) return say(false, `off: fp8 GEMMs are not measured for ${model.label}`);
  if (withIt.secondsPerStep >= without.secondsPerStep) return say(false, `off: not faster on the H200 (${round2(withIt.secondsPerStep)} vs ${round2(without.secondsPerStep)} s/step)`, withIt.source);
  const gpu = findGpu(contract.hardware.gpu);
  if (gpu && !gpu.fp8TensorCores) return say(false, `off: the ${gpu.label} has no float8 tensor cores`, FP8_TENSOR_CORES_SOURCE);
  if (gpu && !gpu.fp8RowwiseGemm) return say(false, `off: torch's row-wise scaled fp8 GEMM does not run on the ${gpu.label} (Hopper only)`, FP8_ROWWISE_SOURCE);
  return say(
    true,
    `on: ${round2(without.secondsPerStep)} -> ${round2(withIt.secondsPerStep)} s/step on the H200; the bench's 50-step loss curve matched bf16 within 0.02%`,
    withIt.source,
  );
}

function round3(x: number): number {
  return x >= 0.1 ? round2(x) : Math.round(x * 1000) / 1000;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
