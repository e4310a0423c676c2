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

/** Decompression-bomb limit on header width x height: one home, core knowledge/image-formats.ts (the built-in trainer is told it too). */
export { MAX_INPUT_PIXELS } from "@loraspec/core/knowledge/image-formats.js";

/**
 * Near-duplicate decision (dedupe.ts), calibrated on the labelled set in bench/dedupe-set: a pair
 * is a candidate at DCT-hash Hamming distance <= `phashMax`, confirmed when the thumbnails' pixel
 * distance is <= `pixelAtZero - pixelPerBit * hamming` (the closer the hashes, the more pixel
 * change is tolerated: colour tweaks and watermarks keep the hash, crops move it), and, when the
 * worker is installed, by image-embedding cosine >= `embeddingMin`. Flat images (grey std below
 * `flatContrast`) match exact copies only.
 */
export const NEAR_DUPLICATE: Fact<{ phashMax: number; pixelAtZero: number; pixelPerBit: number; embeddingMin: number; flatContrast: number }> = {
  value: { phashMax: 22, pixelAtZero: 16, pixelPerBit: 0.6, embeddingMin: 0.95, flatContrast: 4 },
  source:
    "ours: bench/dedupe-bench.ts on bench/dedupe-set and examples/character (precision/recall in bench/RESULTS.md 'Dataset deduplication'); embeddingMin: the 0.95 CLIP cosine LAION/clip-retrieval dedup uses, not yet measured here with real weights",
  asOf: "2026-12",
};

/**
 * Long side / short side above which an image is reported as an extreme aspect ratio: a square
 * crop of a 3:1 image keeps a third of it, and aspect buckets top out near 4:1.
 */
export const EXTREME_ASPECT_RATIO: Fact<number> = {
  value: 3,
  source: "ours: a square crop keeps 1/ratio of the frame; core's default buckets at 1024 (sides 256..1024, plan/buckets.ts) are at most 4:1",
  asOf: "2026-11",
};

/**
 * `warn`: the scale factor from an image to the shape it trains at above which prep warns it is upscaled
 * (1: any upscale; probe-image.ts scaleProblem). `skip`: short side relative to the training resolution
 * below which it is skipped where prep scales it up to its shape (upscaling over 2x teaches blur:
 * square crops, core's set). ai-toolkit's bucket picker keeps a small image's area rather than
 * upscaling it, so there `skip` marks a kept image with a "far-below-resolution" warning (probe-image.ts).
 */
export const SMALL_IMAGE_RATIO: Fact<{ warn: number; skip: number }> = {
  value: { warn: 1, skip: 0.5 },
  source:
    "ours: the guide's build order crops to native resolution; an upscaled source carries no detail at that size. ai-toolkit trains an image under resolution² at its own area (ostris/ai-toolkit@27a03a9 toolkit/buckets.py get_bucket_for_image_size; core plan/ai-toolkit-bucket.ts)",
  asOf: "2026-12",
};

/** Output encoders. PNG level 1: lossless either way, and zlib level 1 costs a fraction of level 6 on photos (bench/RESULTS.md). */
export const OUTPUT_ENCODING: Fact<{ pngCompressionLevel: number; jpegQuality: number }> = {
  value: { pngCompressionLevel: 1, jpegQuality: 95 },
  source: "ours: bench/prep-bench.mjs; JPEG q95 4:4:4 is the usual 'high quality' setting for training sets",
  asOf: "2026-11",
};

/** Side of the RGB thumbnail near-duplicate search works on: what sharp-phash samples for its DCT anyway. */
export const DEDUPE_THUMB_SIZE: Fact<number> = {
  value: 32,
  source: "sharp-phash 2.2 index.js SAMPLE_SIZE 32; the pixel confirmation reuses the same thumbnail (bench/dedupe-bench.ts)",
  asOf: "2026-12",
};

/** Crop windows the pixel confirmation tries (fraction of the side kept): "small crops" up to 10% a side. */
export const NEAR_DUPLICATE_ALIGNMENT: Fact<{ keep: readonly number[]; places: number }> = {
  value: { keep: [1, 0.95, 0.9], places: 5 },
  source: "ours: the labelled set's crops keep 89-91% of a side (bench/dedupe-set); a bigger crop is a new framing, not a copy",
  asOf: "2026-12",
};
