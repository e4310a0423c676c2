import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { trainingShape } from "@loraspec/core/plan/trainer-buckets.js";
import { MANIFEST_FILE, ManifestSchema } from "@loraspec/engine/dataset/prep-manifest.js";
import { SMALL_IMAGE_RATIO } from "@loraspec/engine/dataset/prep-knowledge.js";
import { prepShapes, scanShapes } from "@loraspec/engine/dataset/prep-shapes.js";
import { scanDataset } from "@loraspec/engine/dataset/scan-dataset.js";
import { PREP_SETUPS, sizedDataset, trainerContract, type Aspect, type TrainerName } from "./trainer-prep.js";

/**
 * The too-small boundary (short side under SMALL_IMAGE_RATIO.skip x resolution) per trainer. Where prep scales
 * an image up to its shape (square crops, core's set: Kohya, the built-in trainer, no contract) it would be
 * upscaled over 2x: skipped as "too-small". ai-toolkit's picker trains it at about its own area: kept, with a
 * "far-below-resolution" warning naming the shape. check's scan (scanShapes, what check-project passes) says
 * the same as prep for every image.
 */
const R = 256;
const HALF = R * SMALL_IMAGE_RATIO.value.skip;
const SIZES = [
  { name: "below-square", width: HALF - 1, height: HALF - 1, below: true },
  { name: "below-tall", width: HALF - 1, height: HALF + 40, below: true },
  { name: "far-below", width: 60, height: 64, below: true },
  { name: "at", width: HALF, height: HALF + 8, below: false },
  { name: "above", width: HALF + 1, height: HALF + 1, below: false },
];

/** The set-ups that keep an image under half the resolution (ai-toolkit's own picker); every other one skips it. */
const KEEPS_SMALL = new Set(["ai-toolkit flux1 buckets", "ai-toolkit sdxl buckets"]);
const CASES = PREP_SETUPS.map((c) => ({ ...c, keepsSmall: KEEPS_SMALL.has(c.label) }));
const contractFor = (trainer: TrainerName, base: string, aspect: Aspect): Contract => trainerContract(trainer, base, R, aspect);

const { prep, datasetDir } = sizedDataset({ prefix: "loraspec-too-small-", sizes: SIZES, seed: 700, resolution: R });

describe("too-small: skipped where prep would upscale over 2x, kept with a warning where ai-toolkit trains it at its own size", () => {
  it.each(CASES.map((c) => [c.label, c] as const))("%s", async (_label, c) => {
    const contract = c.trainer ? contractFor(c.trainer, c.base!, c.aspect) : undefined;
    const shapes = prepShapes({ contract, aspect: c.aspect, resolution: R });
    expect(shapes?.picker === "ai-toolkit", "only ai-toolkit bucketed keeps small images").toBe(c.keepsSmall);
    const s = await prep(contract, c.aspect, c.label.replace(/\W+/g, "-"));
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(s.outDir, MANIFEST_FILE), "utf8")));
    // check's scan: with a contract, the rule check-project passes; prep with no contract shapes by its default (undefined).
    const scan = await scanDataset({ dir: datasetDir(), resolution: R, shapes: contract ? scanShapes(contract, R) : shapes, decode: false });
    for (const size of SIZES) {
      const file = `${size.name}.png`;
      const label = `${c.label}: ${size.width}x${size.height}`;
      const skipped = s.skipped.find((x) => x.source === file);
      const warned = s.warnings.filter((x) => x.source === file);
      const entry = manifest.entries.find((e) => e.source === file);
      if (size.below && !c.keepsSmall) {
        expect(skipped?.code, label).toBe("too-small");
        expect(skipped?.message, label).toBe(`${size.width}x${size.height} is far below the ${R}px training resolution (upscaling over 2x teaches blur)`);
      } else {
        expect(skipped, label).toBeUndefined();
        expect(entry?.outputWidth, label).toBeGreaterThan(0);
      }
      const codes = warned.map((w) => w.code);
      if (size.below && c.keepsSmall) {
        const shape = trainingShape(shapes!, R, size);
        expect({ w: entry!.outputWidth, h: entry!.outputHeight }, label).toEqual({ w: shape.width, h: shape.height });
        expect(codes, label).toEqual(["far-below-resolution"]);
        expect(warned[0]!.message, label).toBe(
          `${size.width}x${size.height} is under half the ${R}px training resolution: ai-toolkit trains it at ${shape.width}x${shape.height} (not upscaled), far below the ${R}px the rest of the set trains at; a bigger source teaches more detail`,
        );
      } else {
        expect(codes, label).not.toContain("far-below-resolution");
      }
      if (!size.below) expect(codes, label).toEqual([c.keepsSmall ? "trains-at-own-size" : "upscaled"]);
      // check's scan says what prep does: the same skip (code and message) or the same warnings.
      const scanSkip = scan.skipped.find((x) => x.file === file);
      expect(scanSkip && { code: scanSkip.code, message: scanSkip.message }, label).toEqual(skipped && { code: skipped.code, message: skipped.message });
      expect(scan.warnings.filter((w) => w.file === file).map((w) => ({ code: w.code, message: w.message })), label).toEqual(warned.map((w) => ({ code: w.code, message: w.message })));
    }
  });

  it("a manifest that skipped them as too-small (written before this rule) is said again: ai-toolkit keeps them", async () => {
    const flux = contractFor("ai-toolkit", "flux1-dev", "buckets");
    const first = await prep(flux, "buckets", "reused");
    const file = join(first.outDir, MANIFEST_FILE);
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(file, "utf8")));
    const below = SIZES.filter((x) => x.below).map((x) => `${x.name}.png`);
    // What the old rule recorded for a small image under the same settings: skipped, no output.
    for (const e of manifest.entries.filter((x) => below.includes(x.source))) {
      Object.assign(e, { status: "skipped", problems: [{ code: "too-small", severity: "skip", message: "far below (old rule)" }] });
      delete e.output;
      delete e.outputWidth;
      delete e.outputHeight;
    }
    writeFileSync(file, JSON.stringify(manifest));
    const again = await prep(flux, "buckets", "reused");
    expect(again.skipped).toEqual([]);
    expect(again.warnings.filter((w) => w.code === "far-below-resolution").map((w) => w.source).sort()).toEqual([...below].sort());
  });
});
