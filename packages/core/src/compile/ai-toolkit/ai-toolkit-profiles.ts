import type { BaseModelId } from "../../knowledge/base-models.js";
import type { Sourced } from "../../knowledge/types.js";

/** How ai-toolkit trains one base model: `model.arch` and the model/train defaults it needs (sample steps and guidance: knowledge/sampling.ts). */
export interface AiToolkitProfile extends Sourced {
  arch: string;
  /** Extra `model:` keys (quantization, low_vram, adapters). */
  model: Readonly<Record<string, unknown>>;
  /** Extra `train:` keys. */
  train: Readonly<Record<string, unknown>>;
  noiseScheduler: "flowmatch" | "ddpm";
  /** Text embeddings can be cached (flow models with big LLM/T5 encoders). */
  cacheTextEmbeddings: boolean;
}

const DOC = "shared/reference/trainers.md";
const AS_OF = "2026-08-21";

/**
 * ai-toolkit's text-embedding cache is arch-independent at the pin (27a03a9), FLUX.1 (`arch: flux`) included:
 * train.cache_text_embeddings sets every dataset's flag (jobs/process/BaseSDTrainProcess.py L152-155), the
 * datasets encode each caption (and the blank caption for dropout) once with the model's own encode_prompt
 * (toolkit/dataloader_mixins.py L2268-2330), and the trainer reads the cached embeds and unloads the encoders
 * (extensions_built_in/sd_trainer/SDTrainer.py L351-378, L1671-1679; toolkit/unloader.py L36-71, any pipeline's
 * text_encoder / text_encoder_2). The UI offers the checkbox for FLUX.1 (ui/src/app/jobs/new/SimpleJob.tsx
 * L824-832; options.tsx L105-118 disables only network.conv), default off; its help calls it experimental.
 */
const FLUX1_TE_CACHE = "ai-toolkit 27a03a9 BaseSDTrainProcess.py L152-155, dataloader_mixins.py L2268-2330, SDTrainer.py L351-378 (cache_text_embeddings is arch-independent)";
const FLUX1_TE_CACHE_AS_OF = "2026-12-02";

const FLUX2_MODEL = {
  low_vram: true,
  model_kwargs: { match_target_res: false },
} as const;

export const AI_TOOLKIT_PROFILES: Partial<Record<BaseModelId, AiToolkitProfile>> = {
  sdxl: {
    arch: "sdxl",
    model: {},
    train: {},
    noiseScheduler: "ddpm",
    cacheTextEmbeddings: false,
    source: `${DOC} §3.1 (UI defaults: sdxl, no quantize, ddpm, guidance 6)`,
    asOf: AS_OF,
  },
  "flux1-dev": {
    arch: "flux",
    model: {},
    train: {},
    noiseScheduler: "flowmatch",
    cacheTextEmbeddings: true,
    source: `${DOC} §3.1, §3.3 (config/examples/train_lora_flux_24gb.yaml); ${FLUX1_TE_CACHE}`,
    asOf: FLUX1_TE_CACHE_AS_OF,
  },
  "flux1-schnell": {
    arch: "flux",
    // "Required for flux schnell training" (config/examples/train_lora_flux_schnell_24gb.yaml).
    model: { assistant_lora_path: "ostris/FLUX.1-schnell-training-adapter" },
    train: {},
    noiseScheduler: "flowmatch",
    cacheTextEmbeddings: true,
    source: `${DOC} §3.2 (train_lora_flux_schnell_24gb.yaml: assistant_lora_path, guidance 1, 4 steps); ${FLUX1_TE_CACHE}`,
    asOf: FLUX1_TE_CACHE_AS_OF,
  },
  "flux2-dev": {
    arch: "flux2",
    model: FLUX2_MODEL,
    train: { timestep_type: "weighted" },
    noiseScheduler: "flowmatch",
    cacheTextEmbeddings: true,
    source: `${DOC} §3.1 (UI defaults flux2: quantize, qfloat8, low_vram, timestep_type weighted, match_target_res false); sample guidance/steps unverified`,
    asOf: AS_OF,
    verified: false,
  },
  "flux2-klein-4b": {
    arch: "flux2_klein_4b",
    model: FLUX2_MODEL,
    train: { timestep_type: "weighted" },
    noiseScheduler: "flowmatch",
    cacheTextEmbeddings: true,
    source: `${DOC} §3.1 (UI defaults flux2_klein_4b: same as flux2); sample guidance/steps unverified`,
    asOf: AS_OF,
    verified: false,
  },
  "flux2-klein-9b": {
    arch: "flux2_klein_9b",
    model: FLUX2_MODEL,
    train: { timestep_type: "weighted" },
    noiseScheduler: "flowmatch",
    cacheTextEmbeddings: true,
    source: `${DOC} §3.1 (UI defaults flux2_klein_9b: same as flux2); sample guidance/steps unverified`,
    asOf: AS_OF,
    verified: false,
  },
  "qwen-image": {
    arch: "qwen_image",
    model: { low_vram: true },
    train: {},
    noiseScheduler: "flowmatch",
    cacheTextEmbeddings: true,
    source: `${DOC} §3.3 (config/examples/train_lora_qwen_image_24gb.yaml)`,
    asOf: AS_OF,
  },
  "zimage-turbo": {
    arch: "zimage:turbo",
    model: { assistant_lora_path: "ostris/zimage_turbo_training_adapter/zimage_turbo_training_adapter_v2.safetensors" },
    train: {},
    noiseScheduler: "flowmatch",
    cacheTextEmbeddings: true,
    source: `${DOC} §3.1 (UI zimage:turbo: training adapter v2, sample guidance 1, 9 steps); `,
    asOf: AS_OF,
    verified: false,
  },
};

/** Contract optimizer -> ai-toolkit `train.optimizer`. */
export const AI_TOOLKIT_OPTIMIZERS: Sourced & { map: Readonly<Record<string, string>> } = {
  map: { adamw: "adamw", adamw8bit: "adamw8bit", lion8bit: "lion8bit", prodigy: "prodigy", adafactor: "adafactor" },
  source: `${DOC} §3.3 (TrainConfig optimizer, default adamw; examples adamw8bit)`,
  asOf: AS_OF,
};

/** Contract precision -> ai-toolkit `train.dtype` and `save.dtype`. */
export const AI_TOOLKIT_DTYPES: Readonly<Record<string, { train: string; save: string }>> = {
  bf16: { train: "bf16", save: "bf16" },
  fp16: { train: "fp16", save: "float16" },
  fp32: { train: "fp32", save: "float32" },
};

/**
 * Contract `base.quantize` -> ai-toolkit `model.qtype` (optimum-quanto / torchao type names).
 * The text encoder is quantized to qfloat8 whenever the base is (the examples' 24 GB recipe).
 */
export const AI_TOOLKIT_QTYPES: Sourced & { map: Readonly<Record<"fp8" | "int8" | "nf4", string>> } = {
  map: { fp8: "qfloat8", int8: "qint8", nf4: "uint4" },
  source: `${DOC} §3.3 (ModelConfig qtype default qfloat8; uint3/uint4 torchao types with accuracy-recovery adapters); qint8/uint4 unverified`,
  asOf: AS_OF,
  verified: false,
};
