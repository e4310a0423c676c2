import type { Sourced } from "./types.js";

/**
 * Regularisers and schedules (issue 21): caption dropout, tag shuffling, noise offset, min-SNR
 * weighting, flow-model timestep sampling and EMA of the LoRA weights. Each default is a trainer's
 * own (a sourced recipe); the contract fields (contract/schema.ts hyperparameters) default to them,
 * every compiler writes them in its trainer's words (or a lint finding names the field:
 * lint/regulariser-rules.ts), and the built-in trainer's constants below reach the worker through
 * schema/builtin-trainer.json (BUILTIN_TRAINER.regularisers; worker/loraspec_worker/train/regularize.py).
 */

const AS_OF = "2026-12-02";
const KOHYA = "kohya-ss/sd-scripts v0.10.1";
const AITK = "ostris/ai-toolkit@27a03a9";
const DIFFUSERS = "huggingface/diffusers examples/dreambooth/train_dreambooth_lora_sdxl.py / train_dreambooth_lora_flux.py";

/** Flow-model timestep sampling: how the noise level sigma in (0, 1) of each sample is drawn. */
export const TIMESTEP_SAMPLINGS = ["uniform", "sigmoid", "logit_normal", "shift"] as const;
export type TimestepSampling = (typeof TIMESTEP_SAMPLINGS)[number];

export interface RegulariserDefault<T> extends Sourced {
  /** The contract's default (undefined: off). */
  default: T;
  /** Worker arches the built-in trainer applies it to (absent: every arch). */
  arches?: readonly string[];
}

const FLOW_ARCHES = ["flux1", "flux2-klein", "qwen-image", "zimage"] as const;

export const REGULARISER_DEFAULTS = {
  caption_dropout: {
    default: 0,
    source: `${KOHYA} --caption_dropout_rate (default 0; trainers.md §2.4); ${AITK} toolkit/config_modules.py L956 caption_dropout_rate 0.0`,
    asOf: AS_OF,
  } satisfies RegulariserDefault<number>,
  shuffle_tags: {
    default: false,
    source: `${KOHYA} --shuffle_caption (default False) with --keep_tokens (trainers.md §2.4); ${AITK} toolkit/config_modules.py L955-957 shuffle_tokens/keep_tokens`,
    asOf: AS_OF,
  } satisfies RegulariserDefault<boolean>,
  noise_offset: {
    default: 0,
    arches: ["sdxl"],
    source: `${DIFFUSERS} (sdxl --noise_offset, default 0); ${KOHYA} --noise_offset (trainers.md §2.3 Noise/loss); ${AITK} toolkit/config_modules.py L410`,
    asOf: AS_OF,
  } satisfies RegulariserDefault<number>,
  min_snr_gamma: {
    default: undefined,
    arches: ["sdxl"],
    note: "off by default in every recipe; 5 is the value diffusers' --snr_gamma help and the Min-SNR paper (arXiv 2303.09556) recommend",
    source: `${DIFFUSERS} (sdxl --snr_gamma, default None, "Recommended value is 5.0"); ${KOHYA} --min_snr_gamma (library/custom_train_functions.py apply_snr_weight); ${AITK} toolkit/config_modules.py L405`,
    asOf: AS_OF,
  } satisfies RegulariserDefault<number | undefined>,
  timestep_sampling: {
    // diffusers' flow scripts default to --weighting_scheme none: u ~ U(0,1) indexes the scheduler's sigmas.
    default: "uniform",
    arches: FLOW_ARCHES,
    source: `${DIFFUSERS} (--weighting_scheme default none; diffusers training_utils.compute_density_for_timestep_sampling); ${KOHYA} --timestep_sampling (trainers.md §2.3 FLUX table); ${AITK} toolkit/samplers/custom_flowmatch_sampler.py L116-134`,
    asOf: AS_OF,
  } satisfies RegulariserDefault<TimestepSampling>,
  ema: {
    default: undefined,
    note: "off by default (diffusers' LoRA scripts and sd-scripts have no LoRA EMA); ai-toolkit's FLUX.1 24 GB example turns it on at 0.99, its EMAConfig default decay is 0.999",
    source: `${AITK} toolkit/config_modules.py L545-549, L827-828 (ema_config use_ema, ema_decay 0.999); config/examples/train_lora_flux_24gb.yaml (ema_decay 0.99; trainers.md §3.3)`,
    asOf: AS_OF,
  } satisfies RegulariserDefault<number | undefined>,
} as const;

/**
 * The built-in trainer's sampling constants (read by the worker): the sigmoid / logit-normal
 * parameters and the resolution-dependent shift (mu grows linearly with the image's token count,
 * sigma' = e^mu / (e^mu + 1/sigma - 1)), the same as FLUX's inference schedule.
 */
export const BUILTIN_REGULARISERS = {
  flowArches: FLOW_ARCHES,
  /** Kohya --sigmoid_scale default 1.0 (sigmoid: sigma = sigmoid(scale * N(0,1))). */
  sigmoidScale: 1.0,
  /** diffusers compute_density_for_timestep_sampling: --logit_mean 0.0, --logit_std 1.0. */
  logitMean: 0.0,
  logitStd: 1.0,
  /** sd-scripts flux_train_utils get_lin_function(x1=256, y1=0.5, x2=4096, y2=1.15); diffusers' FlowMatchEulerDiscreteScheduler base/max_image_seq_len and base/max_shift defaults. */
  shift: { baseSeqLen: 256, maxSeqLen: 4096, baseShift: 0.5, maxShift: 1.15 },
  /** Tags are comma-separated (Kohya --caption_separator default ","); the tag holding the trigger stays first. */
  tagSeparator: ",",
  source: `${KOHYA} library/flux_train_utils.py get_noisy_model_input_and_timesteps (flux_shift, sigmoid) and train_util.py (--sigmoid_scale, --caption_separator); ${DIFFUSERS} training_utils.py compute_density_for_timestep_sampling; diffusers schedulers/scheduling_flow_match_euler_discrete.py config defaults`,
  asOf: AS_OF,
} as const;

/** Kohya's words for a timestep sampling (flux_train_network.py --timestep_sampling; logit_normal is its `sigma` path with --weighting_scheme logit_normal). */
export const KOHYA_TIMESTEP_SAMPLING: Readonly<Record<TimestepSampling, Record<string, string | number>>> = {
  uniform: { timestep_sampling: "uniform" },
  sigmoid: { timestep_sampling: "sigmoid", sigmoid_scale: BUILTIN_REGULARISERS.sigmoidScale },
  logit_normal: { timestep_sampling: "sigma", weighting_scheme: "logit_normal", logit_mean: BUILTIN_REGULARISERS.logitMean, logit_std: BUILTIN_REGULARISERS.logitStd },
  // flux_shift: sigmoid draws shifted by the image's token count (the resolution-dependent shift).
  shift: { timestep_sampling: "flux_shift", sigmoid_scale: BUILTIN_REGULARISERS.sigmoidScale },
};

/** ai-toolkit's train.timestep_type (custom_flowmatch_sampler.py L116-134): linear is uniform; its sigmoid is sigmoid(N(0,1)), the logit-normal at mean 0, std 1; shift is the dynamic (token-count) shift. */
export const AI_TOOLKIT_TIMESTEP_TYPE: Readonly<Record<TimestepSampling, string>> = {
  uniform: "linear",
  sigmoid: "sigmoid",
  logit_normal: "sigmoid",
  shift: "shift",
};
