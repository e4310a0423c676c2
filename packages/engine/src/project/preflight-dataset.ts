import type { DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import type { Finding } from "@loraspec/core/lint/finding.js";
import { sizeProblems } from "../dataset/probe-image.js";
import { EXTREME_ASPECT_RATIO, SMALL_IMAGE_RATIO } from "../dataset/prep-knowledge.js";

export interface DatasetPreflight {
  /** The images prep keeps (what the trainer will see): lint counts these. */
  kept: DatasetSummary;
  findings: Finding[];
}

/**
 * Applies prep's own size rules (probe-image.ts sizeProblems: far too small, too elongated) to the
 * scanned headers, so check counts the images a run will really train on.
 */
export function preflightDataset(dataset: DatasetSummary, resolution: number): DatasetPreflight {
  const skipped: { file: string; why: string }[] = [];
  const images = dataset.images.filter((image) => {
    const skip = sizeProblems(image.width, image.height, resolution).find((p) => p.severity === "skip");
    if (skip) skipped.push({ file: image.file, why: skip.message });
    return !skip;
  });
  const findings: Finding[] = [];
  if (skipped.length > 0) {
    findings.push({
      rule: "dataset-images-skipped",
      severity: "warning",
      message: `prep will skip ${skipped.length} of ${dataset.images.length} images, leaving ${images.length} (${skipped[0]!.file}: ${skipped[0]!.why}).`,
      fix: `Replace them with images at least ${Math.ceil(resolution * SMALL_IMAGE_RATIO.value.skip)} px on the short side and at most ${EXTREME_ASPECT_RATIO.value}:1, or remove them.`,
      source: `${SMALL_IMAGE_RATIO.source}; ${EXTREME_ASPECT_RATIO.source}`,
      field: "dataset.path",
      files: skipped.slice(0, 5).map((s) => s.file),
    });
  }
  return { kept: { ...dataset, images }, findings };
}
