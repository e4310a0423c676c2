import type { Contract } from "@loraspec/core/contract/schema.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { shapeRule, type ShapeRule } from "@loraspec/core/plan/trainer-buckets.js";

/**
 * The rule `loraspec prep` shapes images by (prepareDataset's `shapes`): with aspect buckets and a contract
 * that buckets, its trainer's own (core's shapeRule, the one the plan's shapes come from), so each image is
 * cut to the shape that trainer trains it at and the trainer leaves it whole. Undefined (prep falls back to
 * core's default Kohya-style set, trainer-independent) with no contract, or a contract whose dataset.aspect
 * is square (`--aspect buckets` asked of prep alone). Throws what resolveBuckets throws for a set that cannot exist.
 */
export function prepShapes(params: { contract?: Contract; aspect?: "square" | "buckets"; resolution: number }): ShapeRule | undefined {
  const { contract } = params;
  if (params.aspect !== "buckets" || contract?.dataset.aspect !== "buckets") return undefined;
  return shapeRule(contract, getBaseModel(contract.base.model), params.resolution);
}

/**
 * The rule check's and the server's scans say "upscaled" by (what prep cuts for `contract` at `resolution`):
 * prepShapes with the contract's own dataset.aspect. Undefined for square, no resolution, or a bucket set
 * that cannot exist (check reports that set as its own finding; the scan then judges a square).
 */
export function scanShapes(contract: Contract, resolution: number | undefined): ShapeRule | undefined {
  if (!resolution) return undefined;
  try {
    return prepShapes({ contract, aspect: contract.dataset.aspect, resolution });
  } catch {
    return undefined;
  }
}
