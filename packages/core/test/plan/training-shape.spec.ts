import { describe, expect, it } from "vitest";
import { aiToolkitBucket } from "@loraspec/core/plan/ai-toolkit-bucket.js";
import { aspectBuckets } from "@loraspec/core/plan/buckets.js";
import { shapeRule, trainingShape, trainingShapes, type ShapeRule } from "@loraspec/core/plan/trainer-buckets.js";
import { TRAINER_SIDES } from "@loraspec/core/knowledge/trainer-resolution.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { contract } from "../lint/helpers.js";

/** Seeded uniform integers (mulberry32): the same draws every run. */
function ints(seed: number) {
  let a = seed >>> 0;
  return (lo: number, hi: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return lo + Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * (hi - lo + 1));
  };
}

const DIVISIBILITIES = [...new Set(TRAINER_SIDES.flatMap((r) => (r.bucketed.rounding === "ai-toolkit-area" ? [r.bucketed.divisibility] : [])))];
const RESOLUTIONS = [256, 512, 768, 1000, 1024, 1328];

describe("trainingShape: an image already at its trainer's shape keeps it (prep's output is not cut again)", () => {
  it("the records give the divisibilities the table walks (16 and 32)", () => {
    expect(DIVISIBILITIES.sort((a, b) => a - b)).toEqual([16, 32]);
  });

  it.each(DIVISIBILITIES)("ai-toolkit, divisibility %i: every shape on the divisibility within resolution² maps to itself", (d) => {
    for (const r of RESOLUTIONS) {
      // Every such shape with sides up to 4 r (an aspect over 16:1 is far past anything prep keeps).
      for (let w = d; w <= 4 * r; w += d) {
        for (let h = d; w * h <= r * r && h <= 4 * r; h += d) expect(aiToolkitBucket(w, h, r, d), `${w}x${h} at ${r}`).toEqual({ width: w, height: h });
      }
    }
  });

  // Within prep's aspect limit (3:1, engine EXTREME_ASPECT_RATIO; it skips longer images). Far past it the picker's
  // fallback (no candidate within resolution², toolkit/buckets.py L36-42) gives a shape over resolution², which is not a fixed point.
  it.each(DIVISIBILITIES)("ai-toolkit, divisibility %i: the picker is idempotent on random image sizes up to 3:1 (its output is a fixed point)", (d) => {
    const draw = ints(d);
    for (let k = 0; k < 4000; k++) {
      const r = RESOLUTIONS[draw(0, RESOLUTIONS.length - 1)]!;
      const short = draw(Math.ceil(r / 2), 3000);
      const long = draw(short, 3 * short);
      const [w, h] = k % 2 ? [short, long] : [long, short];
      const once = aiToolkitBucket(w, h, r, d);
      expect([once.width % d, once.height % d, once.width * once.height <= r * r]).toEqual([0, 0, true]);
      expect(aiToolkitBucket(once.width, once.height, r, d), `${w}x${h} at ${r} -> ${once.width}x${once.height}`).toEqual(once);
    }
  });

  it("a set (Kohya, the built-in trainer): every bucket of a resolution is assigned to itself", () => {
    for (const r of RESOLUTIONS.filter((x) => x >= 256)) {
      for (const step of [32, 64]) {
        const rule: ShapeRule = { picker: "set", buckets: aspectBuckets({ step, min_side: 128, max_side: 2048 }, r).buckets };
        for (const b of rule.buckets) expect(trainingShape(rule, r, b)).toEqual(b);
      }
    }
  });

  it("shapeRule: ai-toolkit bucketed picks its own on the record's divisibility; square, Kohya and the built-in trainer take core's set", () => {
    const at = (base: string, aspect: "buckets" | "square") => contract({ base: { model: base as "sdxl" }, trainer: { name: "ai-toolkit" }, dataset: { path: "./dataset", resolution: 1024, aspect } });
    expect(shapeRule(at("flux1-dev", "buckets"), getBaseModel("flux1-dev"), 1024)).toMatchObject({ picker: "ai-toolkit", divisibility: 32 });
    expect(shapeRule(at("sdxl", "buckets"), getBaseModel("sdxl"), 1024)).toMatchObject({ picker: "ai-toolkit", divisibility: 16 });
    expect(shapeRule(at("flux1-dev", "square"), getBaseModel("flux1-dev"), 1024).picker).toBe("set");
    expect(shapeRule(at("flux1-dev", "buckets"), undefined, 1024).picker).toBe("set");
    for (const name of ["kohya", "diffusers"] as const) {
      const c = contract({ base: { model: "sdxl" }, trainer: { name }, dataset: { path: "./dataset", resolution: 1024, aspect: "buckets" } });
      expect(shapeRule(c, getBaseModel("sdxl"), 1024).picker).toBe("set");
    }
  });

  it("the plan's ai-toolkit shapes are trainingShape of each image (one home)", () => {
    const c = contract({ base: { model: "qwen-image" }, trainer: { name: "ai-toolkit" }, dataset: { path: "./dataset", resolution: 1024, aspect: "buckets" } });
    const rule = shapeRule(c, getBaseModel("qwen-image"), 1024);
    const images = [{ width: 3000, height: 2000 }, { width: 700, height: 1100 }];
    expect(trainingShapes(c, getBaseModel("qwen-image")!, 1024, images).buckets).toEqual(images.map((i) => trainingShape(rule, 1024, i)).sort((a, b) => a.width - b.width));
  });
});
