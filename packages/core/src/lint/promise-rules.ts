import type { Contract } from "../contract/schema.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { BLOCK_SWAP, getBlockSwap } from "../knowledge/block-swap.js";
import { falEndpointsFor, getFalEndpoint } from "../knowledge/fal-endpoints.js";
import { getCompatibility } from "../knowledge/trainers.js";
import type { Plan } from "../plan/plan-run.js";
import type { WordLookup } from "./clip-pretokenize.js";
import type { Finding } from "./finding.js";
import { lintResolution } from "./resolution-rules.js";
import { triggerScriptFindings } from "./trigger-script.js";

/**
 * Rules that keep check's promises (issue 16): a clean check means the run starts, and what the
 * plan prints is what the trainer will do. Each rule reads the contract and the plan only.
 */
export interface PromiseCtx {
  c: Contract;
  model: BaseModelRecord;
  plan: Plan;
  words?: WordLookup;
}

type PromiseRule = (ctx: PromiseCtx) => Finding[];

const FAILURE_SOURCE = "shared/reference/perf-reliability.md §4c (crash, resume, NaN and OOM in the trainers)";

/** The guide's contract names its failure path; the schema's defaults must not stand in for it silently. */
const failurePath: PromiseRule = ({ c }) => {
  const out: Finding[] = [];
  const unset = (["on_divergence", "on_oom"] as const).filter((k) => c.failure[k] === undefined);
  if (unset.length > 0) {
    out.push({
      rule: "failure-path-unset",
      severity: "warning",
      message: `the contract does not say what happens when training fails: ${unset.map((k) => `failure.${k}`).join(" and ")} ${unset.length > 1 ? "are" : "is"} not set (the run would ${unset.map((k) => (k === "on_divergence" ? "stop on divergence" : "fail on out-of-memory")).join(" and ")}).`,
      fix: "Set failure.on_divergence (stop or rollback) and failure.on_oom (fail or fallback) explicitly.",
      source: FAILURE_SOURCE,
      field: `failure.${unset[0]}`,
    });
  }
  if (c.failure.on_divergence === "continue") {
    out.push({
      rule: "failure-continue-on-divergence",
      severity: "warning",
      message: "failure.on_divergence is 'continue': a run whose loss turned NaN trains on to the end and saves a broken LoRA (one report: 3,300 steps, 2 h 41 min at avr_loss=nan).",
      fix: "Set failure.on_divergence: stop (or rollback) so a diverged run ends and keeps its last good checkpoint.",
      source: `${FAILURE_SOURCE}: kohya-ss/musubi-tuner#26`,
      field: "failure.on_divergence",
    });
  }
  return out;
};

/** save_every above the step count saves no intermediate checkpoint: the plan would show none. */
const saveEveryOverSteps: PromiseRule = ({ c, plan }) => {
  const every = c.hyperparameters.save_every;
  if (every === undefined || every <= plan.steps) return [];
  return [
    {
      rule: "save-every-over-steps",
      severity: "error",
      message: `hyperparameters.save_every is ${every} but the run has ${plan.steps} steps: no checkpoint is saved before the end, so a crash or an overcooked run keeps nothing.`,
      fix: `Set hyperparameters.save_every below ${plan.steps} (e.g. ${Math.max(1, Math.round(plan.steps / 8))}, about 8 checkpoints).`,
      source: "shared/reference/perf-reliability.md §4c (resume and failure handling in the trainers)",
      field: "hyperparameters.save_every",
    },
  ];
};

/** trainer.endpoint must train this base: another model's endpoint trains the wrong model and is priced at its rate. */
const falEndpoint: PromiseRule = ({ c, model }) => {
  if (c.trainer.name !== "fal" || !c.trainer.endpoint) return [];
  const rec = getFalEndpoint(c.trainer.endpoint);
  if (rec?.bases.includes(model.id)) return [];
  const right = falEndpointsFor(model.id);
  const compat = getCompatibility("fal", model.id);
  return [
    {
      rule: "fal-endpoint-base-mismatch",
      severity: "error",
      message: rec
        ? `trainer.endpoint '${c.trainer.endpoint}' trains ${rec.trains}, not ${model.label}.`
        : `trainer.endpoint '${c.trainer.endpoint}' is not a fal training endpoint loraspec knows.`,
      fix: right.length > 0 ? `Use ${right.map((e) => `'${e}'`).join(" or ")} for ${model.label}, or leave trainer.endpoint out (default ${compat?.endpoint ?? right[0]}).` : `fal has no trainer for ${model.label}: use a local trainer.`,
      source: rec?.source ?? "shared/reference/trainers.md §4.1 (fal-js endpoint map)",
      field: "trainer.endpoint",
    },
  ];
};

/** hardware.block_swap only where the trainer swaps blocks for this base, and within its maximum. */
const blockSwap: PromiseRule = ({ c, model }) => {
  const k = c.hardware.block_swap;
  if (!k) return [];
  const rec = getBlockSwap(c.trainer.name, model.id);
  if (!rec) {
    const where = BLOCK_SWAP.filter((r) => r.bases.includes(model.id)).map((r) => r.trainer);
    return [
      {
        rule: "block-swap-unsupported",
        severity: "error",
        message: `hardware.block_swap is ${k} but ${c.trainer.name} does not swap blocks for ${model.label}.`,
        fix: where.length > 0 ? `Use ${where.join(" or ")} (trainer.name), or remove hardware.block_swap and quantise the base instead.` : "Remove hardware.block_swap; quantise the base (base.quantize) or use a bigger GPU.",
        source: BLOCK_SWAP.map((r) => r.source).join("; "),
        field: "hardware.block_swap",
      },
    ];
  }
  const max = Math.min(rec.maxBlocks, model.blocks);
  if (k <= max) return [];
  return [
    {
      rule: "block-swap-over-max",
      severity: "error",
      message: `hardware.block_swap is ${k} but ${c.trainer.name} swaps at most ${max} blocks of ${model.label}.`,
      fix: `Set hardware.block_swap to ${max} or fewer.`,
      source: rec.source,
      field: "hardware.block_swap",
    },
  ];
};

/** Training sides a trainer fails on (resolution-off-step) or silently rounds (resolution-rounded): lint/resolution-rules.ts. */
const resolution: PromiseRule = ({ c, model, plan }) => lintResolution(c, model, plan.resolution);

const trigger: PromiseRule = ({ c, words }) => triggerScriptFindings(c.trigger.word, words);

export const PROMISE_RULES: readonly PromiseRule[] = [failurePath, saveEveryOverSteps, falEndpoint, blockSwap, resolution, trigger];

export function lintPromises(ctx: PromiseCtx): Finding[] {
  return PROMISE_RULES.flatMap((rule) => rule(ctx));
}
