import { validationThreshold, type ValidationThresholdId } from "../knowledge/validation-thresholds.js";
import type { ValidationPlan } from "./plan-validation.js";
import { setId, type ScoreResult, type SetScores } from "./score-request.js";

export type VerdictStatus = "pass" | "warn" | "fail" | "skip";
export type CheckId = "trigger" | "consistency" | "composition" | "stack";

export interface Measure {
  id: ValidationThresholdId;
  label: string;
  /** null when it could not be measured (no training images, too few of them). */
  value: number | null;
  status: VerdictStatus;
  better: "higher" | "lower";
  pass: number;
  warn: number;
  source: string;
  /** Numbers behind the value (raw distances, the base model's figure, ...). */
  detail?: Record<string, number | string | null>;
  /** On a fail: what to try, and its source (knowledge/validation-thresholds.ts ifFailing). */
  advice?: { text: string; source: string };
}

export interface CheckVerdict {
  check: CheckId;
  title: string;
  status: VerdictStatus;
  measures: Measure[];
}

export interface WeightVerdict {
  key: string;
  candidate: string;
  step?: number;
  weight: number;
  status: VerdictStatus;
  checks: CheckVerdict[];
  /** Sum of each measure's margin over its warn threshold, in threshold units (tie-breaker). */
  margin: number;
}

export interface ValidationVerdicts {
  status: VerdictStatus;
  weights: WeightVerdict[];
  /** The weight (and checkpoint) that best satisfies checks 1-3. */
  best: { key: string; candidate: string; step?: number; weight: number } | undefined;
  stack?: CheckVerdict;
  warnings: { code: string; message: string }[];
}

const ORDER: Record<VerdictStatus, number> = { skip: 0, pass: 1, warn: 2, fail: 3 };

export function worst(statuses: VerdictStatus[]): VerdictStatus {
  return statuses.reduce<VerdictStatus>((acc, s) => (ORDER[s] > ORDER[acc] ? s : acc), "skip");
}

/** A value against a threshold record: pass, warn or fail (skip when not measured). */
export function rate(id: ValidationThresholdId, value: number | null | undefined, detail?: Measure["detail"]): Measure {
  const t = validationThreshold(id);
  let status: VerdictStatus = "skip";
  if (value !== null && value !== undefined && Number.isFinite(value)) {
    if (t.better === "higher") status = value >= t.pass ? "pass" : value >= t.warn ? "warn" : "fail";
    else status = value <= t.pass ? "pass" : value <= t.warn ? "warn" : "fail";
  }
  const m: Measure = { id, label: t.label, value: value ?? null, status, better: t.better, pass: t.pass, warn: t.warn, source: t.source };
  if (detail) m.detail = detail;
  if (status === "fail" && t.ifFailing) m.advice = { text: t.ifFailing.advice, source: t.ifFailing.source };
  return m;
}

/** Check 3: novel-scene images drawn as another scene of the rubric (its training scenes), where the base keeps the scene. */
function sceneSwap(sc: SetScores | undefined): Measure {
  const own = sc?.own_text_best;
  const base = sc?.paired_own_text_best;
  if (!own || !base || own.length !== base.length) return rate("scene_swap_share", null);
  const counted = own.filter((_, i) => base[i]);
  const swapped = counted.filter((ok) => !ok).length;
  return rate("scene_swap_share", counted.length > 0 ? swapped / counted.length : null, {
    swapped,
    counted: counted.length,
    base_swapped: base.filter((ok) => !ok).length,
  });
}

function check(check: CheckId, title: string, measures: Measure[]): CheckVerdict {
  return { check, title, status: worst(measures.map((m) => m.status)), measures };
}

function mean(values: number[]): number | null {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
}

function ratio(a: number | undefined, b: number | undefined): number | null {
  return a === undefined || b === undefined || b === 0 ? null : a / b;
}

function margin(m: Measure): number {
  if (m.value === null) return 0;
  const span = Math.abs(m.pass - m.warn) || Math.abs(m.warn) || 1;
  const raw = m.better === "higher" ? (m.value - m.warn) / span : (m.warn - m.value) / span;
  return Math.max(-2, Math.min(2, raw));
}

/**
 * Mode collapse is the LoRA's fault only when its share is above the base model's on the same
 * prompts and seeds (a weak embedder or a uniform training set can make every image's nearest
 * training image the same one for the base too).
 */
function collapse(share: number | null | undefined, baseShare: number | undefined, refCount: number): Measure {
  const m = rate("mode_collapse_share", share, { reference_images: refCount, base_collapse_share: baseShare ?? null });
  if (m.status !== "skip" && m.value !== null && baseShare !== undefined && m.value <= baseShare) m.status = "pass";
  return m;
}

/** Minimum reference images before "nearest training image" shares mean anything. */
const MIN_REFERENCE_FOR_SHARES = 3;

/**
 * Below this gap (as a share of the training set's own similarity) the base model's trigger-less
 * images already look like the training images, and a move toward them cannot be told from noise.
 */
const MIN_LEAK_GAP_SHARE = 0.05;
/**
 * Below this pull with the trigger (as a share of that gap) the LoRA barely shows its concept at
 * all: there is nothing to leak, and check 1's trigger effect is the measure that fails.
 */
const MIN_LEAK_PULL_SHARE = 0.1;

/**
 * Leak: the LoRA's pull toward the training images without the trigger, as a share of its pull
 * with it. Pull = mean similarity to the training images minus that of the base model's
 * trigger-less images (same prompts and seeds). 0: the concept shows only with the trigger; 1 or
 * more: the trigger adds nothing, the concept shows everywhere (an unbound trigger).
 */
function leak(params: {
  off: SetScores | undefined;
  on: SetScores | undefined;
  baseOff: SetScores | undefined;
  reference: ScoreResult["reference"];
  useDino: boolean;
}): Measure {
  const { off, on, baseOff, reference, useDino } = params;
  const fid = (s: SetScores | undefined) => (useDino ? s?.fidelity_dino : s?.fidelity_clip);
  const ceiling = useDino ? reference.pairwise_dino : reference.pairwise_clip;
  const base = fid(baseOff);
  const [fOn, fOff] = [fid(on), fid(off)];
  const gap = ceiling !== undefined && base !== undefined ? ceiling - base : undefined;
  const pullOn = fOn !== undefined && base !== undefined ? fOn - base : undefined;
  const pullOff = fOff !== undefined && base !== undefined ? fOff - base : undefined;
  const measurable =
    reference.count >= 2 &&
    gap !== undefined &&
    ceiling !== undefined &&
    pullOn !== undefined &&
    pullOff !== undefined &&
    gap >= MIN_LEAK_GAP_SHARE * Math.abs(ceiling) &&
    pullOn >= MIN_LEAK_PULL_SHARE * gap;
  const share = (x: number | undefined) => (x === undefined || gap === undefined || gap <= 0 ? null : x / gap);
  return rate("trigger_leak", measurable ? (pullOff as number) / (pullOn as number) : null, {
    embedder: useDino ? "dino" : "clip",
    fidelity_with: fOn ?? null,
    fidelity_without: fOff ?? null,
    base_fidelity_without: base ?? null,
    reference_pairwise: ceiling ?? null,
    // The pulls as shares of the way from the base's trigger-less images to the training set.
    pull_with_share: share(pullOn),
    pull_without_share: share(pullOff),
  });
}

/**
 * Subject in novel scenes: per novel_scenes prompt, how far the LoRA's images moved toward the
 * training images, as a share of the way from the base model's images of the same prompt and
 * seeds to the training set's own similarity; the value is the weakest scene. An overfit LoRA
 * shows its subject only on its training backgrounds: on another scene its images stay at the
 * base model's (or drop the subject).
 */
function sceneSubject(params: { scenes: number[]; lora: (i: number) => SetScores | undefined; base: (i: number) => SetScores | undefined; reference: ScoreResult["reference"]; useDino: boolean }): Measure {
  const { reference, useDino } = params;
  const fid = (s: SetScores | undefined) => (useDino ? s?.fidelity_dino : s?.fidelity_clip);
  const ceiling = useDino ? reference.pairwise_dino : reference.pairwise_clip;
  const per: Record<string, number | null> = {};
  for (const i of params.scenes) {
    const [l, b] = [fid(params.lora(i)), fid(params.base(i))];
    const gap = ceiling !== undefined && b !== undefined ? ceiling - b : undefined;
    per[`scene_${i}`] = l === undefined || gap === undefined || gap < MIN_LEAK_GAP_SHARE * Math.abs(ceiling as number) ? null : (l - (b as number)) / gap;
  }
  const values = Object.values(per).filter((v): v is number => v !== null);
  const value = reference.count >= 2 && values.length > 0 ? Math.min(...values) : null;
  return rate("scene_subject_share", value, { embedder: useDino ? "dino" : "clip", ...per });
}

/**
 * Sameness: how far the variations' mean pairwise similarity moved from the base model's (same
 * prompts and seeds) toward the training images' own pairwise similarity, as a share of that
 * way. A LoRA that draws one training picture whatever the prompt says is as alike as its
 * training images (1); one that follows the prompts stays near the base (0). Measured only when
 * the training images are more alike than the base model's variations (else diversity_ratio is
 * the measure); uses the image embedder that scores diversity (CLIP or the judge, not DINO).
 */
function sameness(params: { vars: SetScores | undefined; base: SetScores | undefined; reference: ScoreResult["reference"] }): Measure {
  const { vars, base, reference } = params;
  const train = reference.pairwise_clip;
  const sVar = vars ? 1 - vars.diversity : undefined;
  const sBase = base ? 1 - base.diversity : undefined;
  const gap = train !== undefined && sBase !== undefined ? train - sBase : undefined;
  const measurable =
    reference.count >= MIN_REFERENCE_FOR_SHARES && sVar !== undefined && gap !== undefined && train !== undefined && gap >= MIN_LEAK_GAP_SHARE * Math.abs(train);
  return rate("variation_sameness", measurable ? ((sVar as number) - (sBase as number)) / (gap as number) : null, {
    variations_pairwise: sVar ?? null,
    base_pairwise: sBase ?? null,
    reference_pairwise: train ?? null,
  });
}

/** Turns the worker's scores into pass / warn / fail per check, per weight, and picks the best weight. */
export function judgeValidation(params: { plan: ValidationPlan; scores: ScoreResult }): ValidationVerdicts {
  const { plan, scores } = params;
  const refCount = scores.reference.count;
  const baseVar = scores.sets[setId.baseVariations];
  const baseScenes = scores.sets[setId.baseScenes];
  const weights: WeightVerdict[] = plan.weights.map((w) => {
    const trig = scores.trigger[w.key];
    const vars = scores.sets[setId.variations(w.key)];
    const useDino = vars?.fidelity_dino !== undefined && scores.reference.pairwise_dino !== undefined;
    const trigger = check("trigger", "1. Trigger fires, and only with the trigger", [
      rate("trigger_effect", trig?.effect, trig ? { with_vs_without: trig.distance, base_with_vs_without: trig.base_distance } : undefined),
      leak({
        off: scores.sets[setId.triggerOff(w.key)],
        on: scores.sets[setId.triggerOn(w.key)],
        baseOff: scores.sets[setId.baseTriggerOff],
        reference: scores.reference,
        useDino,
      }),
    ]);
    const fidelity = useDino
      ? ratio(vars?.fidelity_dino, scores.reference.pairwise_dino)
      : ratio(vars?.fidelity_clip, scores.reference.pairwise_clip);
    const consistency = check("consistency", "2. Subject consistency across poses", [
      rate("subject_fidelity_ratio", refCount >= 2 ? fidelity : null, {
        embedder: useDino ? "dino" : "clip",
        clip_i: vars?.fidelity_clip ?? null,
        dino: vars?.fidelity_dino ?? null,
        reference_pairwise_clip: scores.reference.pairwise_clip ?? null,
        reference_pairwise_dino: scores.reference.pairwise_dino ?? null,
      }),
      rate("diversity_ratio", ratio(vars?.diversity, baseVar?.diversity), { diversity: vars?.diversity ?? null, base_diversity: baseVar?.diversity ?? null }),
      collapse(refCount >= MIN_REFERENCE_FOR_SHARES ? vars?.collapse_share : null, baseVar?.collapse_share, refCount),
      sameness({ vars, base: baseVar, reference: scores.reference }),
    ]);
    const sc = scores.sets[setId.scenes(w.key)];
    const composition = check("composition", "3. Composition with the base (novel scenes)", [
      rate("prompt_fidelity_delta", sc?.clip_t !== undefined && baseScenes?.clip_t !== undefined ? sc.clip_t - baseScenes.clip_t : null, {
        clip_t: sc?.clip_t ?? null,
        base_clip_t: baseScenes?.clip_t ?? null,
      }),
      rate("scene_near_duplicate_share", refCount >= 2 ? sc?.near_duplicate_share : null),
      sceneSwap(sc),
      sceneSubject({
        scenes: [...new Set(w.scenes.map((s) => s.scene))],
        lora: (i) => scores.sets[setId.scene(w.key, i)],
        base: (i) => scores.sets[setId.baseScene(i)],
        reference: scores.reference,
        useDino,
      }),
    ]);
    const checks = [trigger, consistency, composition];
    return {
      key: w.key,
      candidate: w.candidate,
      step: w.step,
      weight: w.weight,
      status: worst(checks.map((c) => c.status)),
      checks,
      margin: checks.flatMap((c) => c.measures).reduce((sum, m) => sum + margin(m), 0),
    };
  });

  let stack: CheckVerdict | undefined;
  if (plan.stack) {
    const s = scores.stack.stack;
    const measures: Measure[] = [
      rate("stack_combined_weight", plan.stack.combinedWeight),
      rate("stack_adapter_count", plan.stack.adapters.length),
    ];
    for (const a of plan.stack.adapters) {
      measures.push(rate("stack_retention", s?.retention[a.name], { adapter: a.name, weight: a.weight, shift_alone: s?.shift[a.name] ?? null }));
    }
    stack = check("stack", "4. Stacking", measures);
  }

  const ranked = [...weights].sort((a, b) => {
    const fails = (v: WeightVerdict) => v.checks.filter((c) => c.status === "fail").length;
    const warns = (v: WeightVerdict) => v.checks.filter((c) => c.status === "warn").length;
    return fails(a) - fails(b) || warns(a) - warns(b) || b.margin - a.margin;
  });
  const top = ranked[0];
  const best = top ? { key: top.key, candidate: top.candidate, step: top.step, weight: top.weight } : undefined;
  const status = worst([top?.status ?? "skip", stack?.status ?? "skip"]);
  return { status, weights, best, stack, warnings: plan.warnings };
}

/** Mean of numbers, exported for the report's summaries. */
export { mean as meanOf };

/** The advice of every failing measure (knowledge/validation-thresholds.ts ifFailing), once per measure, in check order. */
export function adviceOf(verdicts: ValidationVerdicts): { measure: string; text: string; source: string }[] {
  const out = new Map<string, { measure: string; text: string; source: string }>();
  const measures = [...verdicts.weights.flatMap((w) => w.checks.flatMap((c) => c.measures)), ...(verdicts.stack?.measures ?? [])];
  for (const m of measures) if (m.advice && !out.has(m.id)) out.set(m.id, { measure: m.id, ...m.advice });
  return [...out.values()];
}

