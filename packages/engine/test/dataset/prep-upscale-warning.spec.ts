import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { getTrainerSide } from "@loraspec/core/knowledge/trainer-resolution.js";
import { MANIFEST_FILE, ManifestSchema } from "@loraspec/engine/dataset/prep-manifest.js";
import { prepShapes } from "@loraspec/engine/dataset/prep-shapes.js";
import { scaleProblem } from "@loraspec/engine/dataset/probe-image.js";
import { PREP_SETUPS, sizedDataset, trainerContract, type Aspect, type TrainerName } from "./trainer-prep.js";

/**
 * prep's "upscaled" warning appears exactly where prep scales an image up to the shape it writes (square crops,
 * core's bucket set: Kohya, the built-in trainer, prep with no contract). ai-toolkit's picker keeps an image under
 * resolution² at its own area: never "upscaled", "trains-at-own-size" instead (its sides rounded onto the model's
 * divisibility, at most one step), and nothing for an image at or over resolution².
 */
const R = 256;
/** Sizes as fractions of R: under, at and over it, square and not; (0.9, 1.2) is under R on one side yet over R² in area;
 * (1.45, 0.97) is under R on its short side yet scaled down into a 5:3 bucket (the old short-side rule called it upscaled). */
const FRACTIONS: Array<[number, number]> = [
  [1, 1],
  [0.7, 0.7],
  [0.62, 1.15],
  [0.9, 1.2],
  [1.5, 1],
  [0.95, 0.95],
  [1.31, 1.02],
  [2.2, 1],
  [1.45, 0.97],
];
const SIZES = FRACTIONS.map(([w, h], k) => ({ name: `i${k}`, width: Math.round(w * R) + k, height: Math.round(h * R) }));

const CASES = PREP_SETUPS;
const contractFor = (trainer: TrainerName, base: string, aspect: Aspect): Contract => trainerContract(trainer, base, R, aspect);

const { prep, datasetDir } = sizedDataset({ prefix: "loraspec-upscale-", sizes: SIZES, seed: 900, resolution: R });

describe("prep says an image is upscaled exactly where its pixels are", () => {
  it.each(CASES.map((c) => [c.label, c] as const))("%s", async (_label, c) => {
    const contract = c.trainer ? contractFor(c.trainer, c.base!, c.aspect) : undefined;
    const s = await prep(contract, c.aspect, c.label.replace(/\W+/g, "-"));
    const bucketed = contract && c.trainer === "ai-toolkit" && c.aspect === "buckets" ? getTrainerSide("ai-toolkit", getBaseModel(c.base!)!.family)?.bucketed : undefined;
    const ownPicker = bucketed?.rounding === "ai-toolkit-area" ? bucketed.divisibility : undefined;
    if (c.trainer === "ai-toolkit" && c.aspect === "buckets") expect(ownPicker).toBeDefined();
    expect(s.processed.length).toBe(SIZES.length);
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(s.outDir, MANIFEST_FILE), "utf8")));
    for (const size of SIZES) {
      const file = `${size.name}.png`;
      const entry = manifest.entries.find((e) => e.source === file)!;
      const out = { width: entry.outputWidth!, height: entry.outputHeight! };
      const codes = s.warnings.filter((w) => w.source === file).map((w) => w.code);
      // What prep did to this image's pixels: the cover scale from the source to the shape it wrote.
      const factor = Math.max(out.width / size.width, out.height / size.height);
      const label = `${size.width}x${size.height} -> ${out.width}x${out.height}`;
      if (ownPicker === undefined) {
        expect(codes.includes("upscaled"), label).toBe(factor > 1);
        expect(codes, label).not.toContain("trains-at-own-size");
      } else {
        // ai-toolkit keeps a small image's area: its only stretch is one side rounded onto the divisibility.
        expect(codes, label).not.toContain("upscaled");
        expect(factor, label).toBeLessThan(1 + ownPicker / Math.min(size.width, size.height));
        expect(codes.includes("trains-at-own-size"), label).toBe(size.width * size.height < R * R);
      }
    }
  });

  it("says what each trainer does: upscaled by how much to which shape, or ai-toolkit's own size", () => {
    expect(scaleProblem(180, 180, 256)?.message).toBe("180x180 is upscaled 1.42x to 256x256 (the 256px training resolution)");
    expect(scaleProblem(300, 300, 256)).toBeUndefined();
    const flux = prepShapes({ contract: contractFor("ai-toolkit", "flux1-dev", "buckets"), aspect: "buckets", resolution: 1024 })!;
    expect(scaleProblem(600, 600, 1024, flux)).toEqual({
      code: "trains-at-own-size",
      severity: "warn",
      message: "600x600 is under the 1024px training resolution: ai-toolkit trains it at 608x608, about its own size (not upscaled; sides on 32 px)",
    });
    expect(scaleProblem(1000, 1200, 1024, flux)).toBeUndefined();
  });
});
