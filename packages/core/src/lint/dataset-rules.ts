import { TRIGGER_PLACEMENT_SEVERITY } from "../knowledge/lint-severity.js";
import { getDatasetSize, CAPTION_RULES, MIXED_ASPECT_TOLERANCE } from "../knowledge/recipes.js";
import type { Finding } from "./finding.js";
import { type Rule, inRange, rangeText, datasetCount } from "./lint-rule.js";

/**
 * The dataset: how many images for the target, and (with the quick scan) their size, aspect,
 * captions and trigger placement.
 * Registered in lint-contract.ts (RULE_FUNCTIONS).
 */
/**
 * "N images", or, where prep leaves some of the folder's images out or the trainer (handed the folder as it is) never
 * reads some, "N usable images (the trainer never reads Y more: ...; prep leaves out X of M: ...)".
 */
function images(kept: number, candidates: number | undefined, where = "", notRead = 0): string {
  const left = candidates !== undefined ? candidates - kept - notRead : 0;
  const parts = [
    notRead > 0 ? `the trainer never reads ${notRead} more: see dataset-not-prepared` : "",
    left > 0 ? `prep leaves out ${left} of ${candidates}: see dataset-skipped and dataset-duplicates` : "",
  ].filter(Boolean);
  return parts.length ? `${kept} usable image${kept === 1 ? "" : "s"}${where} (${parts.join("; ")})` : `${kept} images${where}`;
}

export const datasetSize: Rule = (ctx) => {
  const { c, model, opts } = ctx;
  const count = datasetCount(ctx);
  const out: Finding[] = [];
  const size = getDatasetSize(c.target, model.family);
  const what = (n: number) => (opts.dataset ? images(n, opts.dataset.candidates, " in the folder", opts.dataset.notRead) : `${n} images expected`);
  if (count !== undefined && count < size.images.min) {
    out.push({
      rule: "dataset-below-minimum",
      severity: "error",
      message: `${what(count)}; a ${c.target} LoRA needs at least ${size.images.min} (${rangeText(size.images)}): fewer cannot show the ${c.target} in enough variety and the LoRA memorises them.`,
      fix: `Use ${size.advice}.`,
      source: size.source,
      field: opts.dataset ? "dataset.path" : "dataset.expected_images",
    });
  } else if (count !== undefined && !inRange(count, size.images)) {
    out.push({
      rule: "dataset-size-range",
      severity: "warning",
      message: `${what(count)}; a ${c.target} LoRA wants ${rangeText(size.images)}.`,
      fix: `Use ${size.advice}.`,
      source: size.source,
      field: opts.dataset ? "dataset.path" : "dataset.expected_images",
    });
  }
  if (opts.dataset && c.dataset.expected_images !== undefined && c.dataset.expected_images !== opts.dataset.images.length) {
    out.push({
      rule: "dataset-count-mismatch",
      severity: "warning",
      message: `dataset.expected_images is ${c.dataset.expected_images} but the folder holds ${images(opts.dataset.images.length, opts.dataset.candidates, "", opts.dataset.notRead)}.`,
      fix: "Add or remove images, or update dataset.expected_images.",
      source: "ours: the contract states what the folder should hold",
      field: "dataset.expected_images",
    });
  }
  return out;
};

export const datasetImages: Rule = ({ c, model, opts }) => {
  const ds = opts.dataset;
  if (!ds || ds.images.length === 0) return [];
  const out: Finding[] = [];
  const native = c.dataset.resolution ?? model.nativeResolution;
  const small = ds.images.filter((i) => Math.min(i.width, i.height) < native);
  if (small.length > 0) {
    out.push({
      rule: "image-below-native",
      severity: "warning",
      message: `${small.length} of ${ds.images.length} images have a side below ${native} px (${small[0]!.file}: ${small[0]!.width}x${small[0]!.height}); upscaled images train blur.`,
      fix: `Replace them with images at least ${native} px on the short side, or lower dataset.resolution.`,
      source: model.source,
      field: "dataset.path",
      files: small.slice(0, 5).map((i) => i.file),
    });
  }
  if (c.dataset.aspect === "square") {
    const distinct: number[] = [];
    for (const r of ds.images.map((i) => i.width / i.height)) {
      if (!distinct.some((d) => Math.max(d, r) / Math.min(d, r) <= MIXED_ASPECT_TOLERANCE.ratio)) distinct.push(r);
    }
    if (distinct.length > 1) {
      const odd = ds.images.filter((i) => i.width !== i.height);
      out.push({
        rule: "mixed-aspect-single-crop",
        severity: "warning",
        message: `the folder mixes ${distinct.length} aspect ratios but dataset.aspect is 'square': ${odd.length} image(s) will lose their edges to the crop.`,
        fix: "Set dataset.aspect: buckets, or crop the images yourself (`loraspec prep`).",
        source: "shared/reference/trainers.md §7 (crop/bucketing in the trainers); ours: single square crop",
        field: "dataset.aspect",
        files: odd.slice(0, 5).map((i) => i.file),
      });
    }
  }
  const missing = ds.images.filter((i) => i.caption === null || i.caption === "");
  if (missing.length > 0) {
    out.push({
      rule: "caption-missing",
      severity: "warning",
      message: `${missing.length} of ${ds.images.length} images have no ${c.captions.extension} caption (${missing[0]!.file}).`,
      fix: "Write captions, or run `loraspec caption`.",
      source: CAPTION_RULES.triggerAtStart.source,
      field: "captions.extension",
      files: missing.slice(0, 5).map((i) => i.file),
    });
  }
  if (c.trigger.placement === "start") {
    const trig = c.trigger.word.toLowerCase();
    const notStart = ds.images.filter((i) => i.caption && !i.caption.toLowerCase().startsWith(trig));
    if (notStart.length > 0) {
      out.push({
        rule: "trigger-not-at-start",
        severity: TRIGGER_PLACEMENT_SEVERITY.byTarget[c.target],
        message: `${notStart.length} caption(s) do not start with the trigger '${c.trigger.word}' (${notStart[0]!.file}: "${notStart[0]!.caption!.slice(0, 50)}").`,
        fix: `Start every caption with '${c.trigger.word}' (never mid-sentence: the trigger then does not bind).`,
        source: `${CAPTION_RULES.triggerAtStart.source}; ${TRIGGER_PLACEMENT_SEVERITY.source}`,
        field: "trigger.word",
        files: notStart.slice(0, 5).map((i) => i.file),
      });
    }
  }
  return out;
};
