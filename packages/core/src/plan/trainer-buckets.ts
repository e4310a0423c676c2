import type { Contract } from "../contract/schema.js";
import { LoraspecError } from "../errors.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { getTrainerSide } from "../knowledge/trainer-resolution.js";
import { aiToolkitBucket } from "./ai-toolkit-bucket.js";
import { assignBucket, resolveBuckets, type Bucket } from "./buckets.js";
import { trainingResolutions } from "./training-resolutions.js";

/** The shapes a run trains its images in, as its trainer picks them, and the pixel counts the plan times and sizes. */
export interface TrainingShapes {
  /** Every distinct shape, grouped by resolution (ascending), each group sorted by width then height. */
  buckets: Bucket[];
  /** The mean pixel count of a step (walltime). */
  meanArea: number;
  /** The largest pixel count of a step (the VRAM peak). */
  maxArea: number;
  /** Who picks the shapes: "ai-toolkit" (per image, its own divisibility) or "set" (core's set, plan/buckets.ts). */
  picker: "ai-toolkit" | "set";
  source: string;
}

type Size = { width: number; height: number };

/**
 * How a run's trainer gives an image its shape (dataset.aspect: buckets): "set" is core's bucket set
 * (resolveBuckets, every training resolution), each image in the bucket of its resolution nearest its
 * aspect (assignBucket: Kohya, the built-in trainer); "ai-toolkit" is its own per-image picker on the
 * model's divisibility (plan/ai-toolkit-bucket.ts), which ignores dataset.buckets. Plain data: prep
 * records it in its manifest.
 */
export type ShapeRule = { picker: "set"; buckets: Bucket[] } | { picker: "ai-toolkit"; divisibility: number; source: string };

/**
 * The rule `contract`'s trainer picks shapes by at `resolution` (the resolved dataset.resolution): ai-toolkit
 * with dataset.aspect: buckets and a record for the model's family (knowledge/trainer-resolution.ts) picks its
 * own; every other run (Kohya, the built-in trainer, a family with no record) trains core's set. Throws what
 * resolveBuckets throws for a set that cannot exist (E_CONTRACT_INVALID, naming the field).
 */
export function shapeRule(contract: Contract, model: BaseModelRecord | undefined, resolution: number): ShapeRule {
  const rec = contract.trainer.name === "ai-toolkit" && contract.dataset.aspect === "buckets" && model ? getTrainerSide("ai-toolkit", model.family) : undefined;
  if (rec && rec.bucketed.rounding === "ai-toolkit-area") {
    return { picker: "ai-toolkit", divisibility: rec.bucketed.divisibility, source: `${rec.source}; ${rec.bucketed.source}` };
  }
  return { picker: "set", buckets: resolveBuckets(contract, resolution).buckets };
}

/**
 * The one answer to "what shape does this run's trainer train an image of `image` size at `resolution`":
 * the plan's shapes (trainingShapes) and prep's crop target (engine prepare-dataset) both come from here.
 * An image already at the shape its rule gives keeps it (ai-toolkit: a shape on the divisibility within
 * resolution² maps to itself; a set: a bucket's own aspect is nearest itself), so the trainer leaves
 * prep's output uncut.
 */
export function trainingShape(rule: ShapeRule, resolution: number, image: Size): Bucket {
  if (rule.picker === "ai-toolkit") return { resolution, ...aiToolkitBucket(image.width, image.height, resolution, rule.divisibility) };
  const atResolution = rule.buckets.filter((b) => b.resolution === resolution);
  if (atResolution.length === 0) throw new LoraspecError("E_USAGE", `the bucket set has no bucket at resolution ${resolution} (it has ${[...new Set(rule.buckets.map((b) => b.resolution))].join(", ")})`);
  return assignBucket(image.width, image.height, atResolution);
}

/**
 * The training shapes of a run at `resolution` (the resolved dataset.resolution). ai-toolkit with dataset.aspect:
 * buckets ignores dataset.buckets (step, min/max sides): it picks per image and per training resolution the largest
 * area <= resolution² on its model's divisibility (shapeRule, trainingShape), so its shapes come from the images'
 * sizes (`images`, the scan; without one, square images of at least `resolution` px). Every other run trains
 * core's bucket set (resolveBuckets), timed at each training resolution's area as before.
 * Throws what resolveBuckets throws for a set that cannot exist (E_CONTRACT_INVALID, naming the field).
 */
export function trainingShapes(contract: Contract, model: BaseModelRecord, resolution: number, images?: readonly Size[]): TrainingShapes {
  const rule = shapeRule(contract, model, resolution);
  const resolutions = trainingResolutions(contract, resolution);
  if (rule.picker === "set") {
    const areas = resolutions.map((r) => r * r);
    return { buckets: rule.buckets, meanArea: areas.reduce((s, a) => s + a, 0) / areas.length, maxArea: Math.max(...areas), picker: "set", source: "plan/buckets.ts" };
  }
  const sizes = images && images.length > 0 ? images : undefined;
  const picked = resolutions.flatMap((r) => (sizes ?? [{ width: r, height: r }]).map((i) => trainingShape(rule, r, i)));
  const distinct = new Map(picked.map((b) => [`${b.resolution}:${b.width}x${b.height}`, b]));
  const buckets = [...distinct.values()].sort((a, b) => a.resolution - b.resolution || a.width - b.width || a.height - b.height);
  const areas = picked.map((b) => b.width * b.height);
  return {
    buckets,
    meanArea: areas.reduce((s, a) => s + a, 0) / areas.length,
    maxArea: Math.max(...areas),
    picker: "ai-toolkit",
    source: rule.source,
  };
}
