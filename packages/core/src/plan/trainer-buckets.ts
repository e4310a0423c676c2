import type { Contract } from "../contract/schema.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { getTrainerSide } from "../knowledge/trainer-resolution.js";
import { aiToolkitBucket } from "./ai-toolkit-bucket.js";
import { resolveBuckets, type Bucket } from "./buckets.js";

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
 * The training shapes of a run at `resolution` (the resolved dataset.resolution). ai-toolkit with dataset.aspect:
 * buckets ignores dataset.buckets (step, min/max sides): it picks per image and per training resolution the largest
 * area <= resolution² on its model's divisibility (plan/ai-toolkit-bucket.ts, TRAINER_SIDES' record), so its shapes
 * come from the images' sizes (`images`, the scan; without one, square images of at least `resolution` px). Every
 * other run trains core's bucket set (resolveBuckets), timed at each training resolution's area as before.
 * Throws what resolveBuckets throws for a set that cannot exist (E_CONTRACT_INVALID, naming the field).
 */
export function trainingShapes(contract: Contract, model: BaseModelRecord, resolution: number, images?: readonly Size[]): TrainingShapes {
  const rec = contract.trainer.name === "ai-toolkit" && contract.dataset.aspect === "buckets" ? getTrainerSide("ai-toolkit", model.family) : undefined;
  const resolutions = [...new Set([...(contract.dataset.aspect === "buckets" ? (contract.dataset.buckets?.resolutions ?? []) : []).filter((r) => r <= resolution), resolution])].sort((a, b) => a - b);
  if (!rec || rec.bucketed.rounding !== "ai-toolkit-area") {
    const buckets = resolveBuckets(contract, resolution).buckets;
    const areas = resolutions.map((r) => r * r);
    return { buckets, meanArea: areas.reduce((s, a) => s + a, 0) / areas.length, maxArea: Math.max(...areas), picker: "set", source: "plan/buckets.ts" };
  }
  const divisibility = rec.bucketed.divisibility;
  const sizes = images && images.length > 0 ? images : undefined;
  const picked = resolutions.flatMap((r) => (sizes ?? [{ width: r, height: r }]).map((i) => ({ resolution: r, ...aiToolkitBucket(i.width, i.height, r, divisibility) })));
  const distinct = new Map(picked.map((b) => [`${b.resolution}:${b.width}x${b.height}`, b]));
  const buckets = [...distinct.values()].sort((a, b) => a.resolution - b.resolution || a.width - b.width || a.height - b.height);
  const areas = picked.map((b) => b.width * b.height);
  return {
    buckets,
    meanArea: areas.reduce((s, a) => s + a, 0) / areas.length,
    maxArea: Math.max(...areas),
    picker: "ai-toolkit",
    source: `${rec.source}; ${rec.bucketed.source}`,
  };
}
