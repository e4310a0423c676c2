import { describe, expect, it } from "vitest";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { RULES, type Finding } from "@loraspec/core/lint/finding.js";
import { BASE_MODEL_IDS, getBaseModel, type BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { trainerRuns } from "@loraspec/core/knowledge/trainers.js";
import { getTrainerSide, TRAINER_SIDES } from "@loraspec/core/knowledge/trainer-resolution.js";
import { aiToolkitBucket } from "@loraspec/core/plan/ai-toolkit-bucket.js";
import { contract, dataset } from "./helpers.js";

/**
 * Kohya and ai-toolkit check no training side themselves: a square run off the model's step fails at
 * its first step (resolution-off-step), a bucketed one rounds silently (resolution-rounded). The
 * expected verdicts are worked out here in pixels from the records, apart from the rule's own latent math.
 */
const BASE_OF: Record<string, BaseModelId> = { sdxl: "sdxl", flux1: "flux1-dev", flux2: "flux2-dev", "qwen-image": "qwen-image", zimage: "zimage-turbo" };
// multiples of 64, 32 (not 64), 16 (not 32), 8 (not 16), then r mod 16 in 1..7 and 9..15, and odd
const SIDES = [1024, 1056, 1040, 1000, 1030, 1025, 1031, 1012, 520] as const;

const lint = (c: ReturnType<typeof contract>): Finding[] => lintContract(c, { dataset: dataset(20) }).filter((f) => f.rule.startsWith("resolution-"));

function expected(trainer: "kohya" | "ai-toolkit", family: string, aspect: "square" | "buckets", r: number): "ok" | "error" | "warning" {
  const rec = TRAINER_SIDES.find((x) => x.trainer === trainer && x.family === family)!;
  if (aspect === "square") {
    // the VAE floors each side to 8 px; the model then needs the floored side on `multiple`
    const floored = r - (r % 8);
    if (rec.square.multiple !== undefined && floored % rec.square.multiple !== 0) return "error";
    return floored === r ? "ok" : "warning";
  }
  const step = rec.bucketed.rounding === "ai-toolkit-area" ? rec.bucketed.divisibility : 64; // Kohya: bucket_reso_steps default
  return r % step === 0 ? "ok" : "warning";
}

const cases = TRAINER_SIDES.flatMap((rec) =>
  (["square", "buckets"] as const).flatMap((aspect) => SIDES.map((r) => [rec.trainer, rec.family, aspect, r, expected(rec.trainer, rec.family, aspect, r)] as const)),
);

describe("resolution-off-step / resolution-rounded: trainer x family x aspect x side", () => {
  it.each(cases)("%s %s %s at %d -> %s", (trainer, family, aspect, r, verdict) => {
    const base = BASE_OF[family]!;
    const c = contract({
      base: { model: base, quantize: "none" },
      trainer: { name: trainer, version: trainer === "kohya" ? "v0.10.1" : "0.12.26" },
      dataset: { path: "./dataset", expected_images: 20, resolution: r, aspect },
    });
    const hits = lint(c);
    const want = verdict === "ok" ? [] : [verdict === "error" ? "resolution-off-step" : "resolution-rounded"];
    expect(hits.map((f) => f.rule)).toEqual(want);
    for (const f of hits) {
      expect(f.field).toBe("dataset.resolution");
      expect(f.severity).toBe(verdict);
      expect(f.fix).toMatch(/ or /); // the two nearest sides on the step
      expect(f.source).toMatch(trainer === "kohya" ? /sd-scripts@ae72efb/ : /ai-toolkit@27a03a9/);
    }
  });

  it("every base Kohya and ai-toolkit compile has a record (or none is needed: SD3.5 does not compile on Kohya)", () => {
    for (const trainer of ["kohya", "ai-toolkit"] as const) {
      for (const base of BASE_MODEL_IDS) {
        if (!trainerRuns(trainer, base)) continue;
        expect(getTrainerSide(trainer, getBaseModel(base)!.family), `${trainer} ${base}`).toBeDefined();
      }
    }
  });

  it("says where the side goes: Kohya's square bucket, ai-toolkit's area, the crash's multiple", () => {
    const msg = (over: Parameters<typeof contract>[0]) => lint(contract(over))[0]?.message ?? "";
    const kohyaSdxl = { base: { model: "sdxl" as const, quantize: "none" as const }, trainer: { name: "kohya" as const, version: "v0.10.1" } };
    expect(msg({ ...kohyaSdxl, dataset: { path: "./dataset", expected_images: 20, resolution: 1000, aspect: "buckets" } })).toMatch(/square images train at 960x960/);
    expect(msg({ ...kohyaSdxl, dataset: { path: "./dataset", expected_images: 20, resolution: 1040, aspect: "square" } })).toMatch(/latent side \(130 px.*not a multiple of 4/);
    const aiSdxl = { base: { model: "sdxl" as const, quantize: "none" as const }, trainer: { name: "ai-toolkit" as const, version: "0.12.26" } };
    expect(msg({ ...aiSdxl, dataset: { path: "./dataset", expected_images: 20, resolution: 1000, aspect: "buckets" } })).toMatch(/about 992x1008 for square images/);
    expect(lint(contract({ ...aiSdxl, dataset: { path: "./dataset", expected_images: 20, resolution: 1040, aspect: "square" } }))).toEqual([]);
  });

  it("Kohya's square bucket follows dataset.buckets.step, and a multi-resolution entry is named by its index", () => {
    const c = contract({
      base: { model: "sdxl", quantize: "none" },
      trainer: { name: "kohya", version: "v0.10.1" },
      dataset: { path: "./dataset", expected_images: 20, resolution: 1056, aspect: "buckets", buckets: { step: 32, resolutions: [512, 1000] } },
    });
    expect(lint(c).map((f) => [f.rule, f.field])).toEqual([["resolution-rounded", "dataset.buckets.resolutions.1"]]);
    expect(lint(c)[0]!.message).toMatch(/992x992/);
  });

  it("both codes are listed rules", () => {
    expect(RULES.find((r) => r.id === "resolution-off-step")?.severity).toBe("error");
    expect(RULES.find((r) => r.id === "resolution-rounded")?.severity).toBe("warning");
  });
});

/**
 * dataset.resolution left out: the run trains at the base's native side (the plan's resolution), and the rule judges that
 * side as it judges a written one (same verdict), saying it is the default. Every base's default x every trainer that
 * runs it x aspect. The one the table finds: ai-toolkit bucketed Qwen-Image, whose native 1328 is off its bucket
 * divisibility 32, so square images train at 1312x1344 (toolkit/buckets.py): a different, non-square shape, not the
 * native side; the default stays 1328 (Qwen-Image's native square, what every other run takes) and the finding says it.
 */
describe("resolution-off-step / resolution-rounded on the base's default side (dataset.resolution left out)", () => {
  const cases = BASE_MODEL_IDS.flatMap((base) =>
    (["kohya", "ai-toolkit", "diffusers"] as const).filter((t) => trainerRuns(t, base)).flatMap((trainer) => (["square", "buckets"] as const).map((aspect) => [base, trainer, aspect] as const)),
  );
  const over = (base: BaseModelId, trainer: "kohya" | "ai-toolkit" | "diffusers", aspect: "square" | "buckets", resolution?: number) => ({
    base: { model: base, quantize: "none" as const, ...(trainer === "diffusers" ? { path: "./base" } : {}) },
    trainer: { name: trainer, ...(trainer === "diffusers" ? {} : { version: trainer === "kohya" ? "v0.10.1" : "0.12.26" }) },
    dataset: { path: "./dataset", expected_images: 20, ...(resolution === undefined ? {} : { resolution }), aspect },
  });

  it.each(cases)("%s %s %s: the default is judged as the same side written", (base, trainer, aspect) => {
    const model = getBaseModel(base)!;
    const native = model.nativeResolution;
    const defaulted = lint(contract(over(base, trainer, aspect)));
    const written = lint(contract(over(base, trainer, aspect, native)));
    expect(defaulted.map((f) => [f.rule, f.field, f.severity])).toEqual(written.map((f) => [f.rule, f.field, f.severity]));
    const rec = trainer === "diffusers" ? undefined : getTrainerSide(trainer, model.family);
    const verdict = trainer === "diffusers" ? (native % 16 === 0 ? "ok" : "error") : rec ? expected(trainer, model.family, aspect, native) : "ok";
    expect(defaulted.map((f) => f.rule)).toEqual(verdict === "ok" ? [] : [verdict === "error" ? "resolution-off-step" : "resolution-rounded"]);
    for (const [i, f] of defaulted.entries()) {
      expect(f.message).toMatch(new RegExp(`^dataset\\.resolution is left out, so ${model.label}'s native ${native} is used: `));
      expect(f.message.replace(/^[^:]*: /, "")).toBe(written[i]!.message.replace(/^[^:]*: /, ""));
      expect(f.fix).toBe(written[i]!.fix);
    }
  });

  it("ai-toolkit bucketed Qwen-Image: the native 1328 is rounded (to 1312x1344 for square images), and check says so", () => {
    const hits = lint(contract(over("qwen-image", "ai-toolkit", "buckets")));
    expect(hits.map((f) => [f.rule, f.field])).toEqual([["resolution-rounded", "dataset.resolution"]]);
    expect(hits[0]!.message).toBe(
      "dataset.resolution is left out, so Qwen-Image's native 1328 is used: ai-toolkit does not check it and buckets Qwen-Image on its own divisibility (32): each image trains at the largest area <= 1328² on it, about 1312x1344 for square images of at least 1328 px.",
    );
    expect(hits[0]!.fix).toBe("Set dataset.resolution to 1312 or 1344 (a multiple of 32).");
    // Square (what init writes): ai-toolkit resizes to 1328x1328, on Qwen-Image's 16: taken as asked.
    expect(lint(contract(over("qwen-image", "ai-toolkit", "square")))).toEqual([]);
  });
});

describe("aiToolkitBucket (toolkit/buckets.py get_bucket_for_image_size)", () => {
  it.each([
    [1024, 1024, 1024, 16, 1024, 1024],
    [1000, 1000, 1000, 16, 992, 1008],
    [1000, 1000, 1000, 32, 992, 992],
    [2000, 1000, 1024, 16, 1456, 720], // area capped at 1024², aspect kept
    [600, 600, 1024, 16, 592, 608], // smaller than resolution²: its own area, not upscaled
    [1328, 1328, 1328, 32, 1312, 1344], // Qwen-Image's native side on its divisibility: not square
  ])("%dx%d at %d on %d -> %dx%d", (w, h, r, d, bw, bh) => {
    const b = aiToolkitBucket(w, h, r, d);
    expect(b).toEqual({ width: bw, height: bh });
    expect(b.width * b.height).toBeLessThanOrEqual(r * r);
  });
});
