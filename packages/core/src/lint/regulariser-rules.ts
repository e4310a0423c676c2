import type { Contract } from "../contract/schema.js";
import { isDdpmBase } from "../compile/regularisers.js";
import { AI_TOOLKIT_PROFILES } from "../compile/ai-toolkit/ai-toolkit-profiles.js";
import { REGULARISER_DEFAULTS } from "../knowledge/regularisers.js";
import type { Finding } from "./finding.js";
export { REGULARISER_RULES } from "./regulariser-rule-ids.js";

/**
 * Regularisers and schedules (hyperparameters caption_dropout, shuffle_tags, noise_offset,
 * min_snr_gamma, timestep_sampling, ema): a value that would not reach the trainer (a trainer
 * without the input, a lever of another model family) and a combination that cannot run. Each
 * finding names the field (contract-fields.spec.ts counts on it).
 */

const FAL_SRC = "shared/reference/trainers.md §4.1 (fal-js@381105e endpoint input types: no caption, noise, timestep or EMA inputs)";
type Field = "caption_dropout" | "shuffle_tags" | "noise_offset" | "min_snr_gamma" | "timestep_sampling" | "ema";

/** Which regularisers are set away from their default (off). */
function setFields(c: Contract): Field[] {
  const hp = c.hyperparameters;
  const on: Record<Field, boolean> = {
    caption_dropout: hp.caption_dropout !== REGULARISER_DEFAULTS.caption_dropout.default,
    shuffle_tags: hp.shuffle_tags !== REGULARISER_DEFAULTS.shuffle_tags.default,
    noise_offset: hp.noise_offset !== REGULARISER_DEFAULTS.noise_offset.default,
    min_snr_gamma: hp.min_snr_gamma !== undefined,
    timestep_sampling: hp.timestep_sampling !== undefined,
    ema: hp.ema !== undefined,
  };
  return (Object.keys(on) as Field[]).filter((k) => on[k]);
}

function unsupported(field: Field, why: string, source: string): Finding {
  return {
    rule: "regulariser-unsupported",
    severity: "warning",
    message: `hyperparameters.${field} is not applied: ${why}.`,
    fix: `Remove hyperparameters.${field}, or pick a trainer/base that takes it.`,
    source,
    field: `hyperparameters.${field}`,
  };
}

/** The findings for the regularisers (pure). */
export function lintRegularisers(c: Contract): Finding[] {
  const out: Finding[] = [];
  const trainer = c.trainer.name;
  const hp = c.hyperparameters;
  const ddpm = isDdpmBase(c.base.model);
  for (const field of setFields(c)) {
    if (trainer === "fal") {
      out.push(unsupported(field, "fal's trainer endpoints have no input for it; the endpoint decides", FAL_SRC));
      continue;
    }
    if ((field === "noise_offset" || field === "min_snr_gamma") && !ddpm) {
      out.push(unsupported(field, `it is a DDPM (SDXL) lever; ${c.base.model} is a flow-matching model (use timestep_sampling)`, REGULARISER_DEFAULTS[field].source));
    } else if (field === "timestep_sampling" && ddpm) {
      out.push(unsupported(field, "it chooses flow-matching noise levels; SDXL draws uniform DDPM timesteps", REGULARISER_DEFAULTS.timestep_sampling.source));
    } else if (field === "ema" && trainer === "kohya") {
      out.push(unsupported(field, "sd-scripts' LoRA scripts keep no EMA of the network weights", "kohya-ss/sd-scripts v0.10.1 train_network.py (no EMA option; trainers.md §2.3 flag list)"));
    }
  }
  // Shuffled or dropped captions need the text encoders each step: sd-scripts asserts against
  // cached outputs (trainers.md §2.13); the built-in trainer caches the empty caption for dropout
  // but must encode each step to shuffle.
  // ai-toolkit caches caption embeddings only where its profile does (off for SDXL); a cached caption is encoded once, so a shuffle is lost there too.
  const cached = hp.cache_text_encoder_outputs && (trainer !== "ai-toolkit" || AI_TOOLKIT_PROFILES[c.base.model]?.cacheTextEmbeddings === true);
  const clash: Field[] = trainer === "fal" ? [] : [...(hp.shuffle_tags ? (["shuffle_tags"] as const) : []), ...(trainer === "kohya" && hp.caption_dropout > 0 ? (["caption_dropout"] as const) : [])];
  for (const field of cached ? clash : []) {
    out.push({
      rule: "shuffle-tags-cached-text",
      severity: "error",
      message: `hyperparameters.${field} changes the caption every step, but hyperparameters.cache_text_encoder_outputs encodes each caption once${trainer === "kohya" ? " (sd-scripts stops with an assertion)" : ""}.`,
      fix: `Set hyperparameters.cache_text_encoder_outputs: false (the text encoders stay on the GPU), or turn hyperparameters.${field} off.`,
      source: "shared/reference/trainers.md §2.13 (train_util.py is_text_encoder_output_cacheable L1102-1113; flux_train_network.py L64-67)",
      field: `hyperparameters.${field}`,
    });
  }
  if (hp.shuffle_tags && c.captions.style !== "tags" && trainer !== "fal") {
    out.push({
      rule: "regulariser-unsupported",
      severity: "warning",
      message: "hyperparameters.shuffle_tags shuffles comma-separated parts, but captions.style is natural: sentences would be cut into shuffled pieces.",
      fix: "Use shuffle_tags with tag captions (captions.style: tags, SDXL), or turn it off.",
      source: REGULARISER_DEFAULTS.shuffle_tags.source,
      field: "hyperparameters.shuffle_tags",
    });
  }
  return out;
}
