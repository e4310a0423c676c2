import { LoraspecError } from "../errors.js";
import type { Sourced } from "../knowledge/types.js";
import type { HfScheduleName, LrCurve } from "./lr-curves.js";

/**
 * The schedule model: how each trainer, at its pinned version, turns its own scheduler options
 * into a learning-rate curve (`*CurveOf`, the trainer's code as a function), and which options
 * loraspec writes so that curve is the contract's (`chooseSchedule`), or why none can be.
 * A test walks every scheduler x warm-up x trainer and checks chosen curve == contract curve.
 */

export type ScheduleTrainer = "diffusers" | "kohya" | "ai-toolkit" | "fal";

export interface ScheduleInput {
  scheduler: HfScheduleName;
  warmupSteps: number;
  /** Optimizer steps of the run. */
  steps: number;
  /** Processes (GPUs) on the host. */
  gpus: number;
}

export type ScheduleChoice =
  | { ok: true; options: Record<string, unknown>; source: string }
  | { ok: false; field: "hyperparameters.lr_scheduler" | "hyperparameters.warmup_steps"; reason: string; fix: string; source: string };

/** Where each trainer's scheduler code is, at the pinned versions (read 2026-12-02). */
export const SCHEDULE_SOURCES = {
  kohya: {
    source:
      "kohya-ss/sd-scripts@ae72efb (v0.10.1) library/train_util.py get_scheduler_fix L5265-5399: num_training_steps = max_train_steps * num_processes (L5274), " +
      "constant + warm-up raises (L5294-5297, L5329-5330), constant_with_warmup L5336-5337, linear/cosine L5371-5377 (transformers 4.54.1 get_*_schedule_with_warmup); " +
      "train_network.py L811 (built), L1458 (stepped once per update; accelerate 1.6.0 AcceleratedScheduler.step repeats it num_processes times)",
    asOf: "2026-12-02",
  },
  "ai-toolkit": {
    source:
      "ostris/ai-toolkit@27a03a9 toolkit/scheduler.py get_lr_scheduler: cosine -> CosineAnnealingLR(T_max) L11-16, constant -> ConstantLR(factor 1) L28-32, " +
      "linear -> LinearLR (torch default start_factor 1/3, end_factor 1) L33-37, constant_with_warmup -> diffusers get_constant_schedule_with_warmup (num_warmup_steps default 1000) L38-44, " +
      "other names fail (total_iters reaches the diffusers function) L45-57; jobs/process/BaseSDTrainProcess.py L2231-2242 (total_iters = train.steps), L2512 step(step_num); " +
      "extensions_built_in/sd_trainer/SDTrainer.py L2300 (one step per update)",
    asOf: "2026-12-02",
  },
  diffusers: {
    source:
      "worker/loraspec_worker/train/loop.py train_once: diffusers.optimization.get_scheduler (diffusers 0.42.1: constant returns get_constant_schedule and drops num_warmup_steps, optimization.py L331-332), stepped once per update (train/loop.py)",
    asOf: "2026-12-02",
  },
  fal: {
    source: "shared/reference/trainers.md §4.1 (fal-js@381105e endpoint input types: no scheduler or warm-up field on any trainer endpoint)",
    asOf: "2026-08-02",
  },
} as const satisfies Record<ScheduleTrainer, Sourced>;

type TrainerOptions = Record<string, unknown>;

/** sd-scripts get_scheduler_fix for our options: the curve, or the error it raises. */
export function kohyaCurveOf(options: TrainerOptions, maxTrainSteps: number, numProcesses: number): LrCurve | { error: string } {
  const name = String(options.lr_scheduler ?? "constant");
  const warmup = Number(options.lr_warmup_steps ?? 0);
  if (!["constant", "constant_with_warmup", "linear", "cosine"].includes(name)) return { error: `loraspec does not model sd-scripts' ${name}` };
  if (name === "constant" && warmup !== 0) return { error: "constant does not require `num_warmup_steps`. Set None or 0." };
  return { kind: "hf", name: name as HfScheduleName, warmup, total: maxTrainSteps * numProcesses, stepsPerUpdate: numProcesses };
}

/** ai-toolkit get_lr_scheduler with total_iters = train.steps: the curve, or the error it raises. */
export function aiToolkitCurveOf(options: TrainerOptions, steps: number): LrCurve | { error: string } {
  const name = String(options.lr_scheduler ?? "constant");
  const params = (options.lr_scheduler_params ?? {}) as Record<string, number>;
  if (name === "constant") return { kind: "torch-constant", factor: params.factor ?? 1, totalIters: steps };
  if (name === "linear") return { kind: "torch-linear", startFactor: params.start_factor ?? 1 / 3, endFactor: params.end_factor ?? 1, totalIters: steps };
  if (name === "cosine") return { kind: "torch-cosine", tMax: steps };
  if (name === "constant_with_warmup") return { kind: "hf", name, warmup: params.num_warmup_steps ?? 1000, total: steps, stepsPerUpdate: 1 };
  return { error: "Scheduler must be cosine, cosine_with_restarts, step, linear or constant" };
}

/** The built-in trainer's diffusers get_scheduler for its request fields. */
export function builtinCurveOf(options: TrainerOptions, steps: number): LrCurve {
  const name = String(options.lr_scheduler ?? "constant") as HfScheduleName;
  return { kind: "hf", name, warmup: name === "constant" ? 0 : Number(options.warmup_steps ?? 0), total: steps, stepsPerUpdate: 1 };
}

const WARMUP_FIX = "Set hyperparameters.lr_scheduler: constant_with_warmup to warm up and then hold the LR, or warmup_steps: 0 for a constant LR.";

/**
 * The options loraspec writes for the contract's schedule on `trainer`, or why that trainer cannot
 * run it. Constant + warm-up is refused everywhere: sd-scripts crashes on it after loading the model,
 * the others drop the warm-up silently.
 */
export function chooseSchedule(trainer: ScheduleTrainer, input: ScheduleInput): ScheduleChoice {
  const { scheduler, warmupSteps: w } = input;
  const src = SCHEDULE_SOURCES[trainer].source;
  const refuse = (field: "hyperparameters.lr_scheduler" | "hyperparameters.warmup_steps", reason: string, fix: string): ScheduleChoice => ({ ok: false, field, reason, fix, source: src });
  if (scheduler === "constant" && w > 0) {
    const what: Record<ScheduleTrainer, string> = {
      kohya: "sd-scripts raises \"constant does not require num_warmup_steps\" after the model has loaded and latents are cached",
      "ai-toolkit": "ai-toolkit's constant is torch's ConstantLR, which has no warm-up: the warm-up would be dropped",
      diffusers: "diffusers' get_scheduler ignores num_warmup_steps for constant: the warm-up would be dropped",
      fal: "fal's trainer endpoints take no warm-up",
    };
    return refuse("hyperparameters.warmup_steps", `lr_scheduler constant with warmup_steps ${w}: ${what[trainer]}.`, WARMUP_FIX);
  }
  switch (trainer) {
    case "kohya":
      // sd-scripts counts warm-up in scheduler steps, which accelerate advances once per process per update.
      return { ok: true, options: { lr_scheduler: scheduler, ...(w > 0 ? { lr_warmup_steps: w * input.gpus } : {}) }, source: src };
    case "diffusers":
      return { ok: true, options: { lr_scheduler: scheduler, warmup_steps: w }, source: src };
    case "ai-toolkit":
      if (scheduler === "constant") return { ok: true, options: { lr_scheduler: "constant" }, source: src };
      // Without num_warmup_steps ai-toolkit warms up for 1000 steps.
      if (scheduler === "constant_with_warmup") return { ok: true, options: { lr_scheduler: scheduler, lr_scheduler_params: { num_warmup_steps: w } }, source: src };
      if (w > 0) {
        return refuse(
          "hyperparameters.warmup_steps",
          `ai-toolkit's ${scheduler} is torch's ${scheduler === "linear" ? "LinearLR" : "CosineAnnealingLR"}, which has no warm-up, and its fallback to diffusers' schedules fails: warmup_steps ${w} cannot be run.`,
          `Set warmup_steps: 0 for ${scheduler} on ai-toolkit, or use lr_scheduler: constant_with_warmup.`,
        );
      }
      // torch's LinearLR defaults rise from 1/3 of the LR to the LR: make it decay to 0 as the contract means.
      if (scheduler === "linear") return { ok: true, options: { lr_scheduler: "linear", lr_scheduler_params: { start_factor: 1, end_factor: 0 } }, source: src };
      return { ok: true, options: { lr_scheduler: "cosine" }, source: src };
    case "fal":
      if (scheduler === "constant" && w === 0) return { ok: true, options: {}, source: src };
      return refuse(
        w > 0 ? "hyperparameters.warmup_steps" : "hyperparameters.lr_scheduler",
        `fal's trainer endpoints take no scheduler or warm-up (lr_scheduler ${scheduler}, warmup_steps ${w}); the endpoint runs its own schedule.`,
        "Use lr_scheduler: constant and warmup_steps: 0 with fal, or train locally.",
      );
  }
}

/** The chosen options for a contract, or a coded error naming the field (the compilers' entry). */
export function scheduleOptionsFor(trainer: ScheduleTrainer, input: ScheduleInput): Record<string, unknown> {
  const choice = chooseSchedule(trainer, input);
  if (choice.ok) return choice.options;
  throw new LoraspecError("E_TRAINER_UNSUPPORTED", choice.reason, { field: choice.field, hint: `${choice.fix} (source: ${choice.source})` });
}
