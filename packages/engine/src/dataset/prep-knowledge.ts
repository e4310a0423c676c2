/**
 * Facts and thresholds dataset prep uses, each with where it comes from. Change a record here,
 * not a number in code.
 */
export interface Fact<T> {
  value: T;
  source: string;
  asOf: string;
}

/** Extensions we try to decode (lower case): one home, core's knowledge/image-formats.ts. */
export { DECODABLE_IMAGES as IMAGE_EXTENSIONS } from "@loraspec/core/knowledge/image-formats.js";

/**
 * Decompression-bomb limit on header width x height, checked before any pixel is decoded.
 * Default = sharp's own `limitInputPixels` default (0x3FFF x 0x3FFF).
 */
export const MAX_INPUT_PIXELS: Fact<number> = {
  value: 0x3fff * 0x3fff,
  source: "sharp docs api-constructor.md: limitInputPixels default 268402689; reference/perf-reliability.md §4b",
  asOf: "2026-06",
};

/** Near-duplicate threshold: Hamming distance between 64-bit perceptual hashes. */
export const NEAR_DUPLICATE_HAMMING: Fact<number> = {
  value: 8,
  source: "ail-project/ail-framework PR #318 default (a convention, not a measured optimum); reference/perf-reliability.md §3",
  asOf: "2026-08",
};

/**
 * Long side / short side above which an image is reported as an extreme aspect ratio: a square
 * crop of a 3:1 image keeps a third of it, and aspect buckets top out near 4:1.
 */
export const EXTREME_ASPECT_RATIO: Fact<number> = {
  value: 3,
  source: "ours: a square crop keeps 1/ratio of the frame; with 256..2048 buckets at ~1024^2 area the widest bucket is 4:1",
  asOf: "2026-11",
};

/**
 * Short side relative to the training resolution: below `warn` the image is upscaled (a warning),
 * below `skip` it is skipped (upscaling 2x teaches blur).
 */
export const SMALL_IMAGE_RATIO: Fact<{ warn: number; skip: number }> = {
  value: { warn: 1, skip: 0.5 },
  source: "ours: the guide's build order crops to native resolution; an upscaled source carries no detail at that size",
  asOf: "2026-11",
};

/** Aspect buckets: side step and limits, as in kohya's bucketing (`bucket_reso_steps` 64, min 256, max 2048). */
export const BUCKET_RULES: Fact<{ step: number; minSide: number; maxSide: number }> = {
  value: { step: 64, minSide: 256, maxSide: 2048 },
  source: "kohya-ss/sd-scripts dataset keys min_bucket_reso/max_bucket_reso/bucket_reso_steps (reference/trainers.md §2.4); 256/2048/64 are the values its docs use, not verified in our reference",
  asOf: "2026-08",
};

/** Output encoders. PNG level 1: lossless either way, and zlib level 1 costs a fraction of level 6 on photos (bench/RESULTS.md). */
export const OUTPUT_ENCODING: Fact<{ pngCompressionLevel: number; jpegQuality: number }> = {
  value: { pngCompressionLevel: 1, jpegQuality: 95 },
  source: "ours: bench/prep-bench.mjs; JPEG q95 4:4:4 is the usual 'high quality' setting for training sets",
  asOf: "2026-11",
};
