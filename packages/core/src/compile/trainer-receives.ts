import type { Contract } from "../contract/schema.js";
import type { TrainerId } from "../contract/ids.js";
import { TRAINER_EPOCHS } from "../knowledge/trainer-epochs.js";
import { FAL_DEFAULT_ENDPOINT, FAL_TRAINER_ENDPOINTS } from "./fal/fal-endpoints.js";

/**
 * The plan's settings that `plan`, `train` and the page print only for a trainer that is handed them:
 * - learningRate: the LR (kohya learning_rate, ai-toolkit train.lr, the worker's learning_rate, fal `learning_rate` where the endpoint has it)
 * - rank: rank and alpha (network_dim/alpha, network.linear/linear_alpha, the worker's rank/alpha)
 * - batch: batch size x accumulation x GPUs
 * - repeats: repeats x epochs (knowledge/trainer-epochs.ts: kohya and ai-toolkit num_repeats; the worker trains steps and has none)
 * - resolution: the training resolution and its shapes (buckets)
 * - checkpoints: save every N steps
 * - gpu: the VRAM estimate and walltime per GPU class, made of the batch and resolution above on a GPU loraspec's contract names
 * - networkTargets: which modules the LoRA trains
 * - trainSettings: gradient checkpointing, compile, CUDA graphs, base precision as resolved
 */
export const PLAN_SETTINGS = ["learningRate", "rank", "batch", "repeats", "resolution", "checkpoints", "gpu", "networkTargets", "trainSettings"] as const;
export type PlanSetting = (typeof PLAN_SETTINGS)[number];

/**
 * Settings the run acts on, not the compiled config (plan does not print them):
 * - failurePath: failure.on_divergence and failure.on_oom. loraspec's supervisor stops a local trainer whose loss turns
 *   NaN (engine run/supervise-process.ts, trainer-lines.ts) and retries an OOM with failure.oom_fallbacks (engine
 *   run/oom-fallback.ts; the built-in worker applies its own, compile/diffusers.ts). A fal job is only polled
 *   (engine fal/fal-poll.ts, run/run-fal.ts): neither is acted on, and fal's request has no input for them.
 */
export const RUN_SETTINGS = ["failurePath"] as const;
export type RunSetting = (typeof RUN_SETTINGS)[number];
/** A setting a check rule can judge: one the compiled config carries (PlanSetting) or one the run acts on (RunSetting). */
export type ReceivedSetting = PlanSetting | RunSetting;

export interface TrainerReceives {
  /** Per plan setting: true when the compiled config carries it (`packages/cli/test/plan-trainer-fields.spec.ts` holds each against the compilers). */
  settings: Record<PlanSetting, boolean>;
  /** Per run setting: true when loraspec's run of this trainer acts on it. */
  run: Record<RunSetting, boolean>;
  /** Why some are not sent, when some are not. */
  why?: string;
  source: string;
}

const RUN_ALL: Record<RunSetting, boolean> = { failurePath: true };
const ALL = Object.fromEntries(PLAN_SETTINGS.map((s) => [s, true])) as Record<PlanSetting, boolean>;
const NONE = Object.fromEntries(PLAN_SETTINGS.map((s) => [s, false])) as Record<PlanSetting, boolean>;

const local = (trainer: Exclude<TrainerId, "fal">, source: string): TrainerReceives => {
  const epochs = TRAINER_EPOCHS[trainer];
  return epochs.repeats
    ? { settings: ALL, run: RUN_ALL, source }
    : { settings: { ...ALL, repeats: false }, run: RUN_ALL, why: `${trainer} trains steps; it has no repeats or epochs`, source: `${source}; ${epochs.source}` };
};

const LOCAL: Record<Exclude<TrainerId, "fal">, TrainerReceives> = {
  kohya: local("kohya", "compile/kohya (args.toml, dataset.toml)"),
  "ai-toolkit": local("ai-toolkit", "compile/ai-toolkit (job YAML)"),
  // The worker's request (compile/diffusers.ts) carries steps, never repeats or epochs: it draws batches until the steps are done.
  diffusers: local("diffusers", "compile/diffusers.ts (the worker's request)"),
};

/**
 * Which of the plan's settings the contract's trainer receives: one home for what plan and train print
 * (CLI and web). fal's hosted endpoints take a ZIP, the trigger, steps and, on some, a learning rate
 * (compile/fal/fal-endpoints.ts); they pick their own GPU, rank, batch and resolution.
 */
export function trainerReceives(contract: Contract): TrainerReceives {
  if (contract.trainer.name !== "fal") return LOCAL[contract.trainer.name];
  const id = contract.trainer.endpoint ?? FAL_DEFAULT_ENDPOINT[contract.base.model];
  const record = FAL_TRAINER_ENDPOINTS.find((e) => e.endpoint === id);
  return {
    settings: { ...NONE, learningRate: record?.takesLearningRate ?? false },
    run: { failurePath: false },
    why: `fal's hosted endpoint${id ? ` ${id}` : ""} takes the images, the trigger, the steps${record?.takesLearningRate ? " and a learning rate" : ""}; it picks its own GPU, rank, batch and resolution, and handles its own failures`,
    source: record?.source ?? "compile/fal/fal-endpoints.ts",
  };
}

/**
 * The check findings that judge a value of one of the plan's settings: each is true only for a trainer handed that
 * setting, so lint (lint-contract.ts) and check (engine project/check-project.ts) drop it where trainerReceives says
 * the trainer is not (fal's hosted endpoints pick their own resolution, GPU, batch and checkpoints: an image below the
 * base's native side, a VRAM ceiling or a save_every judges nothing fal does). One home: a rule that reasons about a
 * setting is listed here, not gated on the trainer's name in its own file. Findings that say a trainer does not take a
 * setting (trainer-ignores-field, network-targets-unsupported, block-swap-unsupported) are about that very fact and
 * are not listed. Table test: packages/core/test/lint/rules-trainer-receives.spec.ts (every rule here x every trainer).
 */
export const RULE_SETTINGS: Readonly<Record<string, ReceivedSetting>> = {
  // the LR against the recipe's range (lint/hyperparameter-rules.ts; recipe-target-mismatch's LR reason asks receives itself)
  "lr-sdxl-on-flux": "learningRate",
  "lr-out-of-range": "learningRate",
  // steps x batch x accumulation x GPUs / images: a trainer that picks its own batch makes passes per image unknown
  "passes-per-image-out-of-range": "batch",
  "steps-passes-mismatch": "batch",
  // the training side: dataset.resolution or the base's native side (lint/dataset-rules.ts, resolution-rules.ts, bucket-rules.ts)
  "image-below-native": "resolution",
  "resolution-off-step": "resolution",
  "resolution-rounded": "resolution",
  "buckets-invalid": "resolution",
  // the VRAM estimate and walltime on the contract's GPU (lint/budget-rules.ts)
  "vram-below-profile": "gpu",
  "walltime-over-limit": "gpu",
  // save every N steps (lint/hyperparameter-rules.ts, promise-rules.ts)
  "no-save-every": "checkpoints",
  "save-every-over-steps": "checkpoints",
  // what happens when training fails (lint/promise-rules.ts): only a run loraspec supervises acts on it
  "failure-path-unset": "failurePath",
  "failure-continue-on-divergence": "failurePath",
};

/** Whether the trainer is handed (or its run acts on) a setting. */
export function receivesSetting(receives: TrainerReceives, setting: ReceivedSetting): boolean {
  return setting in receives.settings ? receives.settings[setting as PlanSetting] : receives.run[setting as RunSetting];
}

/** Whether a finding can be true for the trainer: its rule judges no setting, or one the trainer receives (RULE_SETTINGS). */
export function findingApplies(rule: string, receives: TrainerReceives): boolean {
  const setting = RULE_SETTINGS[rule];
  return setting === undefined || receivesSetting(receives, setting);
}
