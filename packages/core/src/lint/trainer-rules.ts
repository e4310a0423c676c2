import type { Contract } from "../contract/schema.js";
import { baseQuantizeOf } from "../contract/base-quantize.js";
import type { Sourced } from "../knowledge/types.js";
import { FAL_DEFAULT_ENDPOINT, FAL_TRAINER_ENDPOINTS } from "../compile/fal/fal-endpoints.js";
import { chooseSchedule } from "../trainers/lr-schedules.js";
import { AI_TOOLKIT_BUCKETS } from "../knowledge/buckets.js";
import type { Finding, Severity } from "./finding.js";
export { TRAINER_RULES } from "./trainer-rule-ids.js";

/**
 * Trainer traps: what a trainer would run differently from the contract (its schedule), contract
 * fields it never receives, and fal endpoints built for another target. Each finding names the
 * field; `packages/core/test/compile/contract-fields.spec.ts` checks that every field either
 * reaches every trainer or is named here.
 */

type TrainerName = Contract["trainer"]["name"];

interface IgnoredField extends Sourced {
  trainer: TrainerName;
  field: string;
  /** True when the contract asks for something the trainer will not do. */
  applies: (c: Contract) => boolean;
  why: string | ((c: Contract) => string);
  /** The fix, where "remove it" is not the whole answer (default: remove it or pick a trainer that takes it). */
  fix?: (c: Contract) => string;
  severity?: Severity;
}

const AI_TOOLKIT_BUCKET_STEP_SOURCE =
  "ostris/ai-toolkit@27a03a9 toolkit/data_loader.py L394-395 (AiToolkitDataset: dataset_config.bucket_tolerance = sd.get_bucket_divisibility()); toolkit/stable_diffusion_model.py L289-297 (get_bucket_divisibility)";
const FAL_SRC = "shared/reference/trainers.md §4.1 (fal-js@381105e endpoint input types)";
const FAL_AS_OF = "2026-08-02";
const hp = (c: Contract) => c.hyperparameters;

/** Fields fal's trainer endpoints have no input for: set away from the default, they are not sent. */
const FAL_IGNORED: ReadonlyArray<[field: string, applies: (c: Contract) => boolean]> = [
  ["base.quantize", (c) => baseQuantizeOf(c) !== "none"],
  ["trainer.version", (c) => c.trainer.version !== undefined],
  ["hardware.gpus", (c) => c.hardware.gpus !== 1],
  ["hardware.nodes", (c) => c.hardware.nodes !== 1],
  ["dataset.resolution", (c) => c.dataset.resolution !== undefined],
  ["dataset.aspect", (c) => c.dataset.aspect !== "square"],
  ["dataset.buckets.min_side", (c) => c.dataset.buckets?.min_side !== undefined],
  ["dataset.buckets.max_side", (c) => c.dataset.buckets?.max_side !== undefined],
  ["dataset.buckets.step", (c) => c.dataset.buckets?.step !== undefined],
  ["dataset.buckets.resolutions", (c) => c.dataset.buckets?.resolutions !== undefined],
  ["hyperparameters.batch_size", (c) => hp(c).batch_size !== 1],
  ["hyperparameters.gradient_accumulation", (c) => hp(c).gradient_accumulation !== 1],
  ["hyperparameters.rank", (c) => hp(c).rank !== 16],
  ["hyperparameters.alpha", (c) => hp(c).alpha !== undefined],
  ["hyperparameters.optimizer", (c) => hp(c).optimizer !== "adamw8bit"],
  ["hyperparameters.precision", (c) => hp(c).precision !== "bf16"],
  ["hyperparameters.gradient_checkpointing", (c) => hp(c).gradient_checkpointing !== undefined],
  ["hyperparameters.cache_latents", (c) => !hp(c).cache_latents],
  ["hyperparameters.cache_text_encoder_outputs", (c) => !hp(c).cache_text_encoder_outputs],
  ["hyperparameters.save_every", (c) => hp(c).save_every !== undefined],
  ["hyperparameters.seed", (c) => hp(c).seed !== 42],
];

/** The fal endpoint a contract trains on (its own, or the base model's default). */
const falEndpoint = (c: Contract) => FAL_TRAINER_ENDPOINTS.find((e) => e.endpoint === (c.trainer.endpoint ?? FAL_DEFAULT_ENDPOINT[c.base.model]));

export const IGNORED_FIELDS: readonly IgnoredField[] = [
  {
    // fal trains on its own copy of the base: a local base.path is never uploaded. validate's worker sampler is the
    // only reader (engine project/preflight-base.ts checks the path for it, as a warning on fal).
    trainer: "fal",
    field: "base.path",
    applies: (c) => c.base.path !== undefined,
    why: (c) =>
      c.validation.sampler === "worker"
        ? "fal trains on its own copy of the base; only `loraspec validate`'s local renders (validation.sampler: worker) load base.path"
        : `fal trains on its own copy of the base, and with validation.sampler: ${c.validation.sampler} nothing else loads base.path`,
    fix: (c) =>
      c.validation.sampler === "worker"
        ? "Keep base.path only for validate's local renders (it must then hold the base's weights), or remove it (validate then renders with the base's Hugging Face weights)."
        : "Remove base.path.",
    source: `${FAL_SRC}; ours: engine project/preflight-base.ts (validate's worker sampler loads the base)`,
    asOf: "2026-12-06",
  },
  {
    trainer: "fal",
    field: "hyperparameters.learning_rate",
    applies: (c) => c.hyperparameters.learning_rate !== undefined && falEndpoint(c)?.takesLearningRate === false,
    why: "this endpoint has no learning_rate input (fal-ai/flux-lora-fast-training picks its own)",
    source: FAL_SRC,
    asOf: FAL_AS_OF,
  },
  ...FAL_IGNORED.map(([field, applies]): IgnoredField => ({
    trainer: "fal",
    field,
    applies,
    why: "fal's trainer endpoints have no input for it; the endpoint decides",
    source: FAL_SRC,
    asOf: FAL_AS_OF,
  })),
  ...(["diffusers", "kohya", "ai-toolkit"] as const).map(
    (trainer): IgnoredField => ({
      trainer,
      field: "trainer.endpoint",
      applies: (c) => c.trainer.endpoint !== undefined,
      why: "it names a fal.ai endpoint and only trainer.name: fal reads it",
      source: "ours: contract schema (trainer.endpoint is fal only)",
      asOf: "2026-12-02",
    }),
  ),
  ...(["min_side", "max_side"] as const).map(
    (side): IgnoredField => ({
      trainer: "ai-toolkit",
      field: `dataset.buckets.${side}`,
      applies: (c) => c.dataset.buckets?.[side] !== undefined,
      why: "ai-toolkit buckets from its own size list scaled to each resolution; only the resolutions are settings",
      source: AI_TOOLKIT_BUCKETS.source,
      asOf: AI_TOOLKIT_BUCKETS.asOf,
    }),
  ),
  {
    trainer: "ai-toolkit",
    field: "dataset.buckets.step",
    applies: (c) => c.dataset.buckets?.step !== undefined,
    why: "ai-toolkit replaces its bucket_tolerance with the model's own divisibility when it loads the dataset (16 for SDXL, 32 for FLUX.1), so a step set here changes nothing",
    source: AI_TOOLKIT_BUCKET_STEP_SOURCE,
    asOf: "2026-12-05",
  },
  {
    trainer: "diffusers",
    field: "trainer.version",
    applies: (c) => c.trainer.version !== undefined,
    why: "the built-in trainer is the worker installed with loraspec; it has no separate version",
    source: "ours: worker/loraspec_worker/train/",
    asOf: "2026-12-02",
  },
  {
    trainer: "ai-toolkit",
    field: "hardware.gpus",
    applies: (c) => c.hardware.gpus > 1,
    why: "loraspec starts ai-toolkit as one process (python run.py), which trains on one GPU; the plan's time assumes all of them",
    source: "ostris/ai-toolkit@27a03a9 run.py (one job, one accelerate process) and jobs/process/BaseSDTrainProcess.py L105-106 (accelerator.device)",
    asOf: "2026-12-02",
  },
  {
    trainer: "ai-toolkit",
    field: "hardware.nodes",
    applies: (c) => c.hardware.nodes > 1,
    why: "loraspec starts ai-toolkit as one process on one host (python run.py); it has no multi-host launch",
    source: "ostris/ai-toolkit@27a03a9 run.py (one job, one accelerate process)",
    asOf: "2026-12-02",
  },

];

/** The findings for trainer traps (pure; `steps` is the plan's resolved step count). */
export function lintTrainerTraps(c: Contract, steps: number): Finding[] {
  const out: Finding[] = [];
  const trainer = c.trainer.name;
  const choice = chooseSchedule(trainer, { scheduler: c.hyperparameters.lr_scheduler, warmupSteps: c.hyperparameters.warmup_steps, steps, gpus: c.hardware.gpus });
  if (!choice.ok) {
    out.push({ rule: "schedule-unsupported", severity: "error", message: choice.reason, fix: choice.fix, source: choice.source, field: choice.field });
  }
  for (const rec of IGNORED_FIELDS) {
    if (rec.trainer !== trainer || !rec.applies(c)) continue;
    out.push({
      rule: "trainer-ignores-field",
      severity: rec.severity ?? "warning",
      message: `${rec.field} is not used by ${trainer}: ${typeof rec.why === "string" ? rec.why : rec.why(c)}.`,
      fix: rec.fix?.(c) ?? `Remove ${rec.field} (or set it to its default), or pick a trainer that takes it.`,
      source: rec.source,
      field: rec.field,
    });
  }
  if (trainer === "fal") {
    const endpoint = falEndpoint(c);
    if (endpoint?.meantFor && !endpoint.meantFor.includes(c.target)) {
      out.push({
        rule: "fal-endpoint-target",
        severity: "warning",
        message: `${endpoint.endpoint} is built for ${endpoint.meantFor.join("/")} LoRAs, but target is '${c.target}'${endpoint.cropFlags?.length ? `; loraspec turns its ${endpoint.cropFlags.map((f) => f.name).join(", ")} off for it` : ""}.`,
        fix: `Use ${FAL_DEFAULT_ENDPOINT[c.base.model] ?? "another endpoint"} (trainer.endpoint), or check the target.`,
        source: endpoint.source,
        field: "trainer.endpoint",
      });
    }
  }
  return out;
}
