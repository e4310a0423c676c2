import type { Contract } from "../contract/schema.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { builtinArchOf } from "../knowledge/builtin-trainer.js";
import { COMPILE_WARMUP_S, SPEED_PROXY } from "../knowledge/train-speed.js";
import {
  ARCH_RUN_COSTS,
  COMPILE_CACHE_WARM_S,
  LOAD_READ_GBPS,
  PROCESS_EXIT_S,
  SAVE_S,
  VAE_READ_GB,
  WORKER_STARTUP_S,
  type ArchRunCost,
} from "../knowledge/whole-run.js";
import type { SampleTime } from "./sample-time.js";
import type { TrainSettings } from "./train-settings.js";

/** One term of a run's wall time, with why it is that long and where the figure comes from. */
export interface WalltimePart {
  part: "start-up" | "load" | "cache" | "set-up" | "warm-up" | "steps" | "saves" | "samples" | "exit";
  seconds: number;
  why: string;
  source: string;
}

export interface RunShape {
  model: BaseModelRecord;
  contract: Contract;
  settings: TrainSettings;
  steps: number;
  /** s/step on this card (the anchor row moved to it), before the worker's loop factor. */
  secondsPerStep: number;
  /** The anchor row's first steps beyond steady ones, where a row was measured (plan/train-speed.ts). */
  warmupBeyondSteadyS?: number;
  /** This card's step over the H200's (1 on the H200) times the pixel count over 1024²: moves GPU work. */
  gpuWork: number;
  images: number;
  compileCache: "cold" | "warm";
  sampling?: SampleTime;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** The built-in trainer's figures of this base's worker arch, else FLUX.1's (said so). */
function archCosts(model: BaseModelRecord): { costs: ArchRunCost; of: string } {
  const { arch } = builtinArchOf(model.id);
  const own = ARCH_RUN_COSTS[arch];
  return own ? { costs: own, of: arch } : { costs: ARCH_RUN_COSTS.flux1!, of: `flux1 (${arch} not measured)` };
}

/** Reading the base's bf16 weights (denoiser, text encoders, VAE) from disk at the published rate. */
function loadPart(model: BaseModelRecord): WalltimePart {
  const gb = model.paramsB * 2 + model.textEncoders.reduce((s, t) => s + t.bf16Gb, 0) + VAE_READ_GB;
  return {
    part: "load",
    seconds: round1(gb / LOAD_READ_GBPS.gbPerS),
    why: `${gb.toFixed(1)} GB of bf16 weights read at ${LOAD_READ_GBPS.gbPerS} GB/s (estimate, not measured: a cold page cache; the bench builds its weights in memory)`,
    source: LOAD_READ_GBPS.source,
  };
}

/** The first steps beyond steady ones: torch.compile (cold or from the compile cache), a CUDA graph's capture, the first kernels. */
function warmupPart(r: RunShape): WalltimePart | undefined {
  const { model, settings } = r;
  const row = r.warmupBeyondSteadyS;
  if (settings.compile && r.compileCache === "warm") {
    const fa4 = settings.attention === "fa4";
    const seconds = fa4 ? COMPILE_CACHE_WARM_S.fa4Seconds : COMPILE_CACHE_WARM_S.seconds;
    const why = `torch.compile from the compile cache an earlier run of this configuration filled${fa4 ? ", FA4's kernels with it" : ""} (measured on ${COMPILE_CACHE_WARM_S.arch})`;
    return { part: "warm-up", seconds, why, source: COMPILE_CACHE_WARM_S.source };
  }
  if (settings.compile) {
    const first = COMPILE_WARMUP_S[SPEED_PROXY[model.id] ?? model.id];
    const seconds = Math.max(row ?? 0, first?.seconds ?? 0);
    const fromRow = row !== undefined && row >= (first?.seconds ?? 0);
    return {
      part: "warm-up",
      seconds: round1(seconds),
      why: `the first torch.compile, a cold compile cache (${fromRow ? "this configuration's measured first steps" : "the first compile of this base"}; ~${COMPILE_CACHE_WARM_S.seconds} s once an earlier run filled the cache)`,
      source: fromRow ? "knowledge/train-speed.ts warmupS of the row" : (first?.source ?? "not measured"),
    };
  }
  if (row === undefined) return undefined;
  const what = settings.cudaGraphs ? "the CUDA graph's warm-up and capture steps" : "the first steps (kernel and allocator set-up)";
  return { part: "warm-up", seconds: round1(row), why: `${what}, this configuration's measured first steps`, source: "knowledge/train-speed.ts warmupS of the row" };
}

/**
 * The parts of a run's wall time. The built-in trainer: every part measured in its whole runs
 * (knowledge/whole-run.ts) but the load (a published disk rate). Another trainer: load, steps and
 * samples (its start-up, caching and saves are not measured: left out, said so in `omitted`).
 */
export function walltimeParts(r: RunShape): { parts: WalltimePart[]; omitted?: string } {
  const builtIn = r.contract.trainer.name === "diffusers";
  const hp = r.contract.hyperparameters;
  const parts: WalltimePart[] = [];
  const samples = r.sampling ? { part: "samples" as const, seconds: r.sampling.seconds, why: `${r.sampling.images} images${r.sampling.path ? ` (${r.sampling.path} sample path)` : ""}`, source: r.sampling.source } : undefined;
  if (!builtIn) {
    parts.push(loadPart(r.model), { part: "steps", seconds: round1(r.steps * r.secondsPerStep), why: `${r.steps} steps x ${r.secondsPerStep.toFixed(3)} s (the trainer's own measured loop)`, source: "plan/walltime.ts anchor" });
    if (samples) parts.push(samples);
    return { parts, omitted: `${r.contract.trainer.name}'s start-up, caching and checkpoint saves are not measured: left out` };
  }
  const { costs, of } = archCosts(r.model);
  const ROWS = costs.source;
  parts.push({ part: "start-up", seconds: WORKER_STARTUP_S.seconds, why: "the worker's Python imports and request checks", source: WORKER_STARTUP_S.source });
  parts.push(loadPart(r.model));
  parts.push({ part: "cache", seconds: round1(r.images * costs.cachePerImageS * r.gpuWork), why: `latents and text embeddings of ${r.images} images at ${costs.cachePerImageS} s each on the H200 (${of})`, source: ROWS });
  parts.push({ part: "set-up", seconds: costs.setupS, why: `the LoRA, optimizer and levers (${of})`, source: ROWS });
  const warm = warmupPart(r);
  if (warm) parts.push(warm);
  const lora = r.settings.loraCompute ?? "fp32";
  const loop = costs.loopFactor[lora];
  parts.push({
    part: "steps",
    seconds: round1(r.steps * r.secondsPerStep * loop),
    why: `${r.steps} steps x ${r.secondsPerStep.toFixed(3)} s x ${loop} (the worker's whole-run step over the bench's with the LoRA in ${lora}, measured in whole runs; ${of})`,
    source: costs.loopSource,
  });
  const periodic = hp.save_every ? Math.max(0, Math.ceil(r.steps / hp.save_every) - 1) : 0;
  parts.push({ part: "saves", seconds: round1(periodic * SAVE_S.periodicS + SAVE_S.finalS), why: `${periodic} periodic save(s) x ${SAVE_S.periodicS} s on the training thread + the final ${SAVE_S.finalS} s`, source: SAVE_S.source });
  if (samples) parts.push(samples);
  parts.push({ part: "exit", seconds: PROCESS_EXIT_S.seconds, why: "the interpreter's launch and exit outside the worker's clock", source: PROCESS_EXIT_S.source });
  return { parts };
}
