import type { Contract } from "../contract/schema.js";
import { isTrainingSide, TRAINING_SIDE } from "../contract/training-resolution.js";
import { isLoraspecError } from "../errors.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { BUCKET_DEFAULTS } from "../knowledge/buckets.js";
import { getTrainerSide, VAE_SCALE, type TrainerSideRecord } from "../knowledge/trainer-resolution.js";
import { aiToolkitBucket } from "../plan/ai-toolkit-bucket.js";
import { aspectBuckets } from "../plan/buckets.js";
import type { Finding } from "./finding.js";

/**
 * A training side each trainer takes as asked: `resolution-off-step` (error) where the run would not
 * start or would fail at its first step, `resolution-rounded` (warning) where the trainer silently
 * trains another side. The built-in trainer: TRAINING_SIDE; Kohya and ai-toolkit: TRAINER_SIDES.
 * The side judged is the one the run trains at: dataset.resolution, or where it is left out the base's
 * native side (what the plan, prep and the compilers take), said as the default.
 */

/** What a trainer does with one side: trains it, fails on it, or trains another. */
export type SideVerdict =
  | { kind: "ok" }
  | { kind: "crash"; multiple: number; latent: number; latentMultiple: number }
  | { kind: "rounded"; how: "vae-floor"; side: number; multiple: number }
  | { kind: "rounded"; how: "kohya-square-bucket"; side: number; step: number }
  | { kind: "rounded"; how: "ai-toolkit-area"; width: number; height: number; divisibility: number };

/**
 * The verdict of `rec` on side `r`; `bucketStep` is Kohya's bucket_reso_steps (the contract's
 * dataset.buckets.step), `squareBucket` Kohya's square bucket at r when the set is known.
 */
export function sideVerdict(rec: TrainerSideRecord, aspect: "square" | "buckets", r: number, bucketStep: number, squareBucket?: number): SideVerdict {
  if (aspect === "square") {
    const latent = Math.floor(r / VAE_SCALE.px);
    const latentMultiple = rec.square.latentMultiple ?? 1;
    const multiple = rec.square.multiple ?? VAE_SCALE.px;
    if (latent === 0 || latent % latentMultiple !== 0) return { kind: "crash", multiple, latent, latentMultiple };
    const side = latent * VAE_SCALE.px;
    return side === r ? { kind: "ok" } : { kind: "rounded", how: "vae-floor", side, multiple };
  }
  if (rec.bucketed.rounding === "kohya-square-bucket") {
    const side = squareBucket ?? Math.floor(r / bucketStep) * bucketStep;
    return side === r ? { kind: "ok" } : { kind: "rounded", how: "kohya-square-bucket", side, step: bucketStep };
  }
  const d = rec.bucketed.divisibility;
  const b = aiToolkitBucket(r, r, r, d);
  return b.width === r && b.height === r ? { kind: "ok" } : { kind: "rounded", how: "ai-toolkit-area", width: b.width, height: b.height, divisibility: d };
}

/** One training side of a contract: the field that sets it, the side, and whether it is the base's default (the field left out). */
interface Side {
  field: string;
  r: number;
  defaulted?: boolean;
}

/**
 * The contract's training sides, by field: dataset.resolution (left out: `resolution`, the base's native side the run
 * trains at) and each dataset.buckets.resolutions entry.
 */
function sides(c: Contract, resolution: number): Side[] {
  return [
    c.dataset.resolution !== undefined ? { field: "dataset.resolution", r: c.dataset.resolution } : { field: "dataset.resolution", r: resolution, defaulted: true },
    ...(c.dataset.buckets?.resolutions ?? []).map((r, i) => ({ field: `dataset.buckets.resolutions.${i}`, r })),
  ];
}

/** How a finding names the side: "dataset.resolution is 1000", or for a default "dataset.resolution is left out, so Qwen-Image's native 1328 is used". */
function sideIs(field: string, r: number, model: BaseModelRecord, defaulted: boolean | undefined): string {
  return defaulted ? `${field} is left out, so ${model.label}'s native ${r} is used` : `${field} is ${r}`;
}

const near = (r: number, m: number) => {
  const down = Math.max(m, Math.floor(r / m) * m);
  return `${down} or ${down + m}`;
};

/** The built-in trainer's request takes sides on TRAINING_SIDE's step only: the worker would refuse the run at start. */
function builtinFinding(field: string, r: number, model: BaseModelRecord, defaulted?: boolean): Finding {
  return {
    rule: "resolution-off-step",
    severity: "error",
    message: `${sideIs(field, r, model, defaulted)}: the built-in trainer trains at ${TRAINING_SIDE.what}, so the run would be refused when it starts.`,
    fix: `Set ${field} to ${near(r, TRAINING_SIDE.multiple)} (a multiple of ${TRAINING_SIDE.multiple}).`,
    source: TRAINING_SIDE.source,
    field,
  };
}

const TRAINER_LABEL = { kohya: "Kohya sd-scripts", "ai-toolkit": "ai-toolkit" } as const;

/** Kohya's square bucket per training resolution, from the contract's bucket set (plan/buckets.ts); empty when the set is invalid (buckets-invalid says so). */
function kohyaSquareBuckets(c: Contract, resolution: number): Map<number, number> {
  try {
    const plan = aspectBuckets(c.dataset.buckets, resolution);
    return new Map(plan.buckets.filter((b) => b.width === b.height).map((b) => [b.resolution, b.width]));
  } catch (error) {
    if (isLoraspecError(error)) return new Map();
    throw error;
  }
}

function finding(rec: TrainerSideRecord, model: BaseModelRecord, field: string, r: number, v: Exclude<SideVerdict, { kind: "ok" }>, defaulted?: boolean): Finding {
  const who = TRAINER_LABEL[rec.trainer];
  const is = sideIs(field, r, model, defaulted);
  if (v.kind === "crash") {
    return {
      rule: "resolution-off-step",
      severity: "error",
      message:
        `${is}: ${who} trains ${model.label} square images (dataset.aspect: square) at ${r}x${r}, and ${rec.square.why}: ` +
        `its latent side (${v.latent} px, the side / ${VAE_SCALE.px}) is not a multiple of ${v.latentMultiple}, so the run fails at its first step.`,
      fix: `Set ${field} to ${near(r, v.multiple)} (a multiple of ${v.multiple}), or use dataset.aspect: buckets (${who} then rounds it).`,
      source: rec.square.source,
      field,
    };
  }
  const base = { rule: "resolution-rounded", severity: "warning" as const, field };
  if (v.how === "vae-floor") {
    return {
      ...base,
      message: `${is}: ${who} trains square images at ${r}x${r}, but the VAE encodes only ${v.side} px of each side (floor(${r} / ${VAE_SCALE.px}) latent px), so they train as ${v.side}x${v.side}.`,
      fix: `Set ${field} to ${near(r, v.multiple)} (a multiple of ${v.multiple}).`,
      source: `${rec.square.source}; ${VAE_SCALE.source}`,
    };
  }
  if (v.how === "kohya-square-bucket") {
    return {
      ...base,
      message: `${is}: ${who} does not check it and buckets on dataset.buckets.step (${v.step}), so square images train at ${v.side}x${v.side}, not ${r}x${r}.`,
      fix: `Set ${field} to ${near(r, v.step)} (a multiple of dataset.buckets.step).`,
      source: rec.source,
      field,
    };
  }
  return {
    ...base,
    message: `${is}: ${who} does not check it and buckets ${model.label} on its own divisibility (${v.divisibility}): each image trains at the largest area <= ${r}² on it, about ${v.width}x${v.height} for square images of at least ${r} px.`,
    fix: `Set ${field} to ${near(r, v.divisibility)} (a multiple of ${v.divisibility}).`,
    source: rec.bucketed.rounding === "ai-toolkit-area" ? `${rec.source}; ${rec.bucketed.source}` : rec.source,
  };
}

/**
 * check's findings on one training side `r` at `field` of a run by `trainer` (one home: lintResolution per side, and
 * init's --resolution, which writes dataset.aspect: square). `bucketStep`: dataset.buckets.step; `squareBucket`:
 * Kohya's square bucket at r when the contract's set is known; `defaulted`: r is the base's native side, the field left out.
 */
export function sideFindings(
  trainer: string,
  model: BaseModelRecord,
  field: string,
  r: number,
  aspect: "square" | "buckets" = "square",
  bucketStep: number = BUCKET_DEFAULTS.step,
  squareBucket?: number,
  defaulted?: boolean,
): Finding[] {
  if (trainer === "diffusers") return isTrainingSide(r) ? [] : [builtinFinding(field, r, model, defaulted)];
  const rec = getTrainerSide(trainer, model.family);
  if (!rec) return [];
  const v = sideVerdict(rec, aspect, r, bucketStep, squareBucket);
  return v.kind === "ok" ? [] : [finding(rec, model, field, r, v, defaulted)];
}

/** Every training side the contract's trainer fails on or rounds (pure; `resolution` is the plan's: dataset.resolution, else the base's native side). */
export function lintResolution(c: Contract, model: BaseModelRecord, resolution: number): Finding[] {
  const aspect = c.dataset.aspect === "buckets" ? "buckets" : "square";
  const bucketStep = c.dataset.buckets?.step ?? BUCKET_DEFAULTS.step;
  const rec = c.trainer.name === "diffusers" ? undefined : getTrainerSide(c.trainer.name, model.family);
  const squares = aspect === "buckets" && rec?.bucketed.rounding === "kohya-square-bucket" ? kohyaSquareBuckets(c, resolution) : new Map<number, number>();
  return sides(c, resolution).flatMap(({ field, r, defaulted }) => sideFindings(c.trainer.name, model, field, r, aspect, bucketStep, squares.get(r), defaulted));
}
