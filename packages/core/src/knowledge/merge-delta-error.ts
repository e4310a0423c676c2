import type { Sourced } from "./types.js";

/**
 * How far a merge's delta may be from the exact weighted sum sum_i w_i (alpha_i / r_i) up_i down_i before `merge` warns
 * (W_MERGE_DELTA_ERROR), and how many modules it measures. The measure is ||merged - exact||_F / ||exact||_F over the
 * modules measured (engine lora/delta-error.ts). Rounding alone stays far below the threshold: one BF16 rounding of a
 * factor is at most 2^-9 ~ 0.2% per value (F16 2^-11), so the delta of rounded factors is off by ~0.1-0.3%; above 1% it
 * is the method, not the dtype: peft's `linear` combines the A and B factors separately (sum sqrt|c_i| B_i times
 * sum sign(c_i) sqrt|c_i| A_i), whose cross terms B_i A_j are no part of the weighted sum unless the inputs share their
 * factors; `svd` truncates to --rank; `cat` is exact.
 */
export interface MergeDeltaErrorRecord extends Sourced {
  /** Warn above this relative Frobenius error. */
  warnAbove: number;
  /** Measure at most this many modules (evenly spread over the sorted module names); every module when fewer. The
   * measure costs ~rank^2 x (rows + cols) per pair of terms: 12 FLUX.1 rank-16 modules (double-block attention and MLP)
   * added ~0.3-0.45 s to a cat of two 35 MB files that took 0.13-0.36 s without it (2-core Xeon, loaded, 2026-12-06). */
  sampleModules: number;
  /** The methods measured on every run: those whose aim is the weighted sum and that can miss it (linear, svd). ties and
   * dare trim and drop entries on purpose: not measured. cat is exact by construction (the factors stacked, each scaled):
   * measured in merge-delta-error.spec against numpy, not per run, since its rank is the sum of the inputs' and the
   * measure grows with rank^2: a cat of three FLUX.1 LoRAs (rank 96 out) took 8.0 s with it against 1.97 s without and
   * 1.66 s for a plain copy (bench/lora-bench.ts, 2-core Xeon, 2026-12-06), past the aim of 2x a copy. */
  methods: readonly string[];
}

export const MERGE_DELTA_ERROR: MergeDeltaErrorRecord = {
  warnAbove: 0.01,
  sampleModules: 12,
  methods: ["linear", "svd"],
  source:
    "ours: IEEE 754 rounding bounds (BF16 8-bit, F16 11-bit significands); peft tuners/lora/model.py _generalized_task_arithmetic_weighted_adapter / add_weighted_adapter combination_type='linear' (equal ranks required; the A and B factors are combined separately); worker/loraspec_worker/merge.py",
  asOf: "2026-12-06",
  verified: false,
};
