import type { Contract } from "../contract/schema.js";
import { LoraspecError } from "../errors.js";
import { BUCKET_DEFAULTS } from "../knowledge/buckets.js";
import { resolutionList, trainingResolutions } from "./training-resolutions.js";

/** One training shape: an image trained at `resolution` is resized to cover width x height and center-cropped to it. */
export interface Bucket {
  resolution: number;
  width: number;
  height: number;
}

/** The bucket set core decides for a run (the request's `buckets`), with the settings it came from. */
export interface BucketPlan {
  /** Training resolutions, ascending; the last is dataset.resolution (or the base's native one). */
  resolutions: number[];
  minSide: number;
  maxSide: number;
  step: number;
  /** Every bucket of every resolution, grouped by resolution, each group sorted by width then height. */
  buckets: Bucket[];
}

/**
 * Kohya's bucket set for one resolution (sd-scripts library/model_util.py make_bucket_resolutions):
 * the square of the resolution's area, then for each width from minSide to maxSide in steps the
 * tallest height (a multiple of step, at most maxSide) whose area stays within resolution², and its
 * transpose. Every side is a multiple of step within [minSide, maxSide]; every area <= resolution².
 */
export function makeBuckets(resolution: number, minSide: number, maxSide: number, step: number): Bucket[] {
  const maxArea = resolution * resolution;
  const sizes = new Map<string, [number, number]>();
  const add = (w: number, h: number) => sizes.set(`${w}x${h}`, [w, h]);
  const square = Math.floor(resolution / step) * step;
  if (square >= minSide && square <= maxSide) add(square, square);
  for (let width = minSide; width <= maxSide; width += step) {
    const height = Math.min(maxSide, Math.floor(Math.floor(maxArea / width) / step) * step);
    if (height >= minSide) {
      add(width, height);
      add(height, width);
    }
  }
  return [...sizes.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([width, height]) => ({ resolution, width, height }));
}

/**
 * The bucket of one resolution's set an image of width x height trains in: the one whose aspect
 * (width / height) is nearest the image's, the first on a tie (sd-scripts BucketManager.select_bucket:
 * argmin of |bucket aspect - image aspect|). The worker does the same (train/buckets.py).
 */
export function assignBucket(width: number, height: number, buckets: readonly Bucket[]): Bucket {
  if (buckets.length === 0) throw new LoraspecError("E_USAGE", "assignBucket needs at least one bucket");
  const aspect = width / height;
  let best = buckets[0]!;
  let bestError = Math.abs(best.width / best.height - aspect);
  for (const b of buckets.slice(1)) {
    const error = Math.abs(b.width / b.height - aspect);
    if (error < bestError) {
      best = b;
      bestError = error;
    }
  }
  return best;
}

const invalid = (field: string, message: string, hint?: string) => new LoraspecError("E_CONTRACT_INVALID", message, { field, ...(hint ? { hint } : {}) });

/**
 * The bucket set of a run at `resolution` (the resolved dataset.resolution). `aspect: square` is
 * one square bucket (the center crop); `aspect: buckets` is Kohya's set per training resolution
 * (aspectBuckets). Pure; refuses a set that cannot exist, naming the field.
 */
export function resolveBuckets(contract: Contract, resolution: number): BucketPlan {
  if (contract.dataset.aspect !== "buckets") {
    const step = contract.dataset.buckets?.step ?? BUCKET_DEFAULTS.step;
    return { resolutions: trainingResolutions(contract, resolution), minSide: resolution, maxSide: resolution, step, buckets: [{ resolution, width: resolution, height: resolution }] };
  }
  return aspectBuckets(contract.dataset.buckets, resolution);
}

/**
 * Kohya's bucket set per training resolution from dataset.buckets settings (`given`; each one left
 * out is Kohya's default, knowledge/buckets.ts). With none given it is the set a contract with
 * `aspect: buckets` and no dataset.buckets trains in at `resolution`: what prep crops to when it has
 * no contract's set. Pure; refuses a set that cannot exist, naming the field.
 */
export function aspectBuckets(given: Contract["dataset"]["buckets"] | undefined, resolution: number): BucketPlan {
  const step = given?.step ?? BUCKET_DEFAULTS.step;
  const minSide = given?.min_side ?? BUCKET_DEFAULTS.minSide;
  const maxSide = given?.max_side ?? Math.max(BUCKET_DEFAULTS.maxSide, Math.ceil(resolution / step) * step);
  for (const [field, value] of [["min_side", minSide], ["max_side", maxSide]] as const) {
    if (value % step !== 0) throw invalid(`dataset.buckets.${field}`, `dataset.buckets.${field} (${value}) is not a multiple of the bucket step (${step}).`, "Kohya needs min/max bucket sides divisible by bucket_reso_steps.");
  }
  if (minSide > maxSide) throw invalid("dataset.buckets.min_side", `dataset.buckets.min_side (${minSide}) is above max_side (${maxSide}).`);
  const extra = given?.resolutions ?? [];
  const over = extra.find((r) => r > resolution);
  if (over !== undefined) {
    throw invalid("dataset.buckets.resolutions", `dataset.buckets.resolutions has ${over}, above dataset.resolution (${resolution}).`, "dataset.resolution is the largest training resolution; raise it or drop the larger entry.");
  }
  // The one list (plan/training-resolutions.ts): every entry is at most `resolution` here.
  const resolutions = resolutionList(extra, resolution);
  for (const r of resolutions) {
    if (r > maxSide) throw invalid("dataset.buckets.max_side", `the training resolution ${r} is above dataset.buckets.max_side (${maxSide}).`, "sd-scripts asserts max_bucket_reso >= resolution.");
    if (r < minSide) throw invalid("dataset.buckets.min_side", `the training resolution ${r} is below dataset.buckets.min_side (${minSide}).`);
  }
  const buckets = resolutions.flatMap((r) => makeBuckets(r, minSide, maxSide, step));
  return { resolutions, minSide, maxSide, step, buckets };
}

/** The number of distinct bucket shapes (what a CUDA graph or torch.compile sees). */
export function bucketShapes(plan: BucketPlan): number {
  return new Set(plan.buckets.map((b) => `${b.width}x${b.height}`)).size;
}
