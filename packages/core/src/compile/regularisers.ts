import type { Contract } from "../contract/schema.js";
import type { BaseModelId } from "../knowledge/base-models.js";
import { getBaseModel } from "../knowledge/base-models.js";
import { AI_TOOLKIT_TIMESTEP_TYPE, KOHYA_TIMESTEP_SAMPLING, REGULARISER_DEFAULTS, type TimestepSampling } from "../knowledge/regularisers.js";

/**
 * The contract's regularisers (hyperparameters caption_dropout, shuffle_tags, noise_offset,
 * min_snr_gamma, timestep_sampling, ema) in each trainer's words. What a trainer or a base cannot
 * take is left out here and named by lint/regulariser-rules.ts (never silently dropped).
 */

/** noise_offset and min_snr_gamma are DDPM (SDXL) levers; timestep_sampling is a flow-model one. */
export function isDdpmBase(model: BaseModelId): boolean {
  return getBaseModel(model)?.family === "sdxl";
}

/** The flow-model sampling the contract asks for (undefined: the trainer's own default). */
function flowSampling(c: Contract): TimestepSampling | undefined {
  return isDdpmBase(c.base.model) ? undefined : c.hyperparameters.timestep_sampling;
}

/** The built-in trainer's request fields (every one always written: the worker has no defaults). */
export function builtinRegularisers(c: Contract): {
  timestep_sampling: TimestepSampling;
  caption_dropout: number;
  shuffle_tags: boolean;
  noise_offset: number;
  min_snr_gamma: number | null;
  ema_decay: number | null;
} {
  const hp = c.hyperparameters;
  const ddpm = isDdpmBase(c.base.model);
  return {
    timestep_sampling: flowSampling(c) ?? REGULARISER_DEFAULTS.timestep_sampling.default,
    caption_dropout: hp.caption_dropout,
    shuffle_tags: hp.shuffle_tags,
    noise_offset: ddpm ? hp.noise_offset : 0,
    min_snr_gamma: ddpm ? (hp.min_snr_gamma ?? null) : null,
    ema_decay: hp.ema ?? null,
  };
}

/** What the built-in trainer leaves out of the contract's regularisers, said out loud (lint names them too). */
export function builtinRegulariserWarnings(c: Contract): { code: string; message: string; field: string }[] {
  const hp = c.hyperparameters;
  const ddpm = isDdpmBase(c.base.model);
  const out: { code: string; message: string; field: string }[] = [];
  for (const field of ["noise_offset", "min_snr_gamma"] as const) {
    const set = field === "noise_offset" ? hp.noise_offset > 0 : hp.min_snr_gamma !== undefined;
    if (set && !ddpm) out.push({ code: "W_REGULARISER_NOT_APPLIED", field: `hyperparameters.${field}`, message: `${field} is an SDXL (DDPM) lever; ${c.base.model} trains without it` });
  }
  if (hp.timestep_sampling !== undefined && ddpm) {
    out.push({ code: "W_REGULARISER_NOT_APPLIED", field: "hyperparameters.timestep_sampling", message: "SDXL draws uniform DDPM timesteps; timestep_sampling is for flow models" });
  }
  return out;
}

/** sd-scripts: dataset TOML [general] keys and args-TOML training keys (written only when on, so old outputs stay as they were). */
export function kohyaRegularisers(c: Contract): { general: Record<string, unknown>; training: Record<string, unknown> } {
  const hp = c.hyperparameters;
  const ddpm = isDdpmBase(c.base.model);
  const sampling = flowSampling(c);
  return {
    general: {
      // The trigger's tag is first in every caption (lint trigger-not-at-start): keep one token.
      shuffle_caption: hp.shuffle_tags,
      keep_tokens: hp.shuffle_tags ? 1 : 0,
      ...(hp.caption_dropout > 0 ? { caption_dropout_rate: hp.caption_dropout } : {}),
    },
    training: {
      ...(ddpm && hp.noise_offset > 0 ? { noise_offset: hp.noise_offset } : {}),
      ...(ddpm && hp.min_snr_gamma !== undefined ? { min_snr_gamma: hp.min_snr_gamma } : {}),
      ...(sampling ? KOHYA_TIMESTEP_SAMPLING[sampling] : {}),
    },
  };
}

/** ai-toolkit: dataset entry keys and `train:` keys (config_modules.py DatasetConfig / TrainConfig). */
export function aiToolkitRegularisers(c: Contract): { dataset: Record<string, unknown>; train: Record<string, unknown> } {
  const hp = c.hyperparameters;
  const ddpm = isDdpmBase(c.base.model);
  const sampling = flowSampling(c);
  return {
    dataset: {
      caption_dropout_rate: hp.caption_dropout,
      shuffle_tokens: hp.shuffle_tags,
      ...(hp.shuffle_tags ? { keep_tokens: 1 } : {}),
    },
    train: {
      ...(ddpm && hp.noise_offset > 0 ? { noise_offset: hp.noise_offset } : {}),
      ...(ddpm && hp.min_snr_gamma !== undefined ? { min_snr_gamma: hp.min_snr_gamma } : {}),
      ...(sampling ? { timestep_type: AI_TOOLKIT_TIMESTEP_TYPE[sampling] } : {}),
      ...(hp.ema !== undefined ? { ema_config: { use_ema: true, ema_decay: hp.ema } } : {}),
    },
  };
}
