import type { Sourced } from "./types.js";

/**
 * Aspect-ratio bucketing defaults (contract `dataset.buckets`, used when `dataset.aspect: buckets`).
 * Kohya's argparse defaults, so a contract that leaves them out buckets as sd-scripts would.
 */
export const BUCKET_DEFAULTS = {
  /** Shortest bucket side, px (--min_bucket_reso). */
  minSide: 256,
  /** Longest bucket side, px (--max_bucket_reso); raised to the training resolution when that is larger (sd-scripts asserts max_bucket_reso >= resolution). */
  maxSide: 1024,
  /** Bucket sides are multiples of this, px (--bucket_reso_steps). */
  step: 64,
  source: "kohya-ss/sd-scripts library/train_util.py add_dataset_arguments (--min_bucket_reso 256, --max_bucket_reso 1024, --bucket_reso_steps 64); shared/reference/trainers.md §2.2",
  asOf: "2026-12-02",
} as const satisfies Sourced & Record<string, unknown>;

/**
 * The bucket step must divide by 32 for SDXL- and FLUX-class models (sd-scripts refuses less):
 * every base loraspec trains is one of those, and 32 px is also a whole number of 2x2 latent patches
 * at the VAE's 8x downscale (16 px) that the flow transformers pack.
 */
export const BUCKET_STEP_MULTIPLE = {
  px: 32,
  source: "shared/reference/trainers.md §2.12 (verify_bucket_reso_steps(32), train_util.py L1093-1097)",
  asOf: "2026-12-02",
} as const satisfies Sourced & Record<string, unknown>;

/** ai-toolkit buckets from its own SDXL size list scaled to each resolution: only the divisibility (bucket_tolerance) is a setting. */
export const AI_TOOLKIT_BUCKETS = {
  source: "shared/reference/trainers.md §3.3 (datasets[].resolution list, buckets, bucket_tolerance 64); ostris/ai-toolkit toolkit/buckets.py (resolutions_1024, get_bucket_for_image_size(divisibility))",
  asOf: "2026-12-02",
} as const satisfies Sourced;
