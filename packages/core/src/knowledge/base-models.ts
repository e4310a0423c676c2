import type { Sourced } from "./types.js";

/** Knowledge-base ids of the base models a contract may name (`base.model`). */
export const BASE_MODEL_IDS = [
  "sdxl",
  "flux1-dev",
  "flux1-schnell",
  "flux2-dev",
  "flux2-klein-4b",
  "flux2-klein-9b",
  "qwen-image",
  "zimage-turbo",
  "sd35-large",
] as const;

export type BaseModelId = (typeof BASE_MODEL_IDS)[number];

/** Families share LR ranges, caption rules and trainer support. */
export type ModelFamily = "sdxl" | "flux1" | "flux2" | "qwen-image" | "zimage" | "sd3";

/** How captions reach the model: CLIP (short, tag-friendly) or a T5 / LLM encoder (natural language). */
export type EncoderKind = "clip" | "t5" | "llm";

export interface TextEncoder {
  name: string;
  kind: EncoderKind;
  /** Weights in GB at bf16 when resident on the GPU (0 when TE outputs are cached). */
  bf16Gb: number;
}

export interface BaseModelRecord extends Sourced {
  id: BaseModelId;
  label: string;
  family: ModelFamily;
  architecture: string;
  /** Default `base.path` (Hugging Face id) when the contract leaves it out. */
  hfRepo: string;
  textEncoders: TextEncoder[];
  /** The encoder whose input format decides the caption style (T5/LLM => natural language). */
  captionEncoder: EncoderKind;
  nativeResolution: number;
  /** Denoiser (UNet / transformer) parameters, billions. */
  paramsB: number;
  /** Hidden width and number of transformer blocks: scale the activation term of the VRAM model. */
  hidden: number;
  blocks: number;
  /** Image + text tokens per sample at the native resolution (latent patches + text length). */
  tokensAtNative: number;
  /** LoRA parameters per unit of rank, all adapted linear layers (P_lora = rank x this). */
  loraParamsPerRank: number;
  /** Frozen-base LoRA step FLOPs at native resolution, teraFLOPs (perf-reliability.md §1.3). */
  loraStepTflops: { ckpt: number; noCkpt: number };
  vram: {
    /** Smallest published working setup, GB, and what it needs. */
    minLoraGb: number;
    minLoraRecipe: string;
    /** Comfortable range for LoRA training without tricks. */
    comfortableGb: number;
    source: string;
  };
}

const PERF = "shared/reference/perf-reliability.md";
const TRAINERS = "shared/reference/trainers.md";

export const BASE_MODELS: readonly BaseModelRecord[] = [
  {
    id: "sdxl",
    label: "Stable Diffusion XL 1.0",
    family: "sdxl",
    architecture: "UNet (latent diffusion), 4-channel VAE",
    hfRepo: "stabilityai/stable-diffusion-xl-base-1.0",
    textEncoders: [
      { name: "CLIP ViT-L/14", kind: "clip", bf16Gb: 0.25 },
      { name: "OpenCLIP ViT-bigG/14", kind: "clip", bf16Gb: 1.4 },
    ],
    captionEncoder: "clip",
    nativeResolution: 1024,
    paramsB: 2.57,
    hidden: 1280,
    blocks: 70,
    tokensAtNative: 4096,
    loraParamsPerRank: 1_450_000,
    loraStepTflops: { ckpt: 21.5, noCkpt: 14.7 },
    vram: {
      minLoraGb: 10,
      minLoraRecipe: "batch 1, gradient checkpointing, AdamW8bit, cached latents and text-encoder outputs",
      comfortableGb: 16,
      source: `${PERF} §1.2 (sd-scripts docs/train_SDXL-en.md: 8 GB possible, 10 GB recommended; diffusers README_sdxl: < 16 GB)`,
    },
    source: `${PERF} §1.2, §1.3; ${TRAINERS} §3.1`,
    asOf: "2026-08-23",
  },
  {
    id: "flux1-dev",
    label: "FLUX.1 [dev]",
    family: "flux1",
    architecture: "MMDiT rectified-flow transformer, 19 double + 38 single blocks, 16-channel VAE",
    hfRepo: "black-forest-labs/FLUX.1-dev",
    textEncoders: [
      { name: "CLIP ViT-L/14", kind: "clip", bf16Gb: 0.25 },
      { name: "T5-XXL", kind: "t5", bf16Gb: 10 },
    ],
    captionEncoder: "t5",
    nativeResolution: 1024,
    paramsB: 11.9,
    hidden: 3072,
    blocks: 57,
    tokensAtNative: 4608,
    loraParamsPerRank: 1748 * 3072,
    loraStepTflops: { ckpt: 245, noCkpt: 171 },
    vram: {
      minLoraGb: 12,
      minLoraRecipe: "kohya --fp8_base + --blocks_to_swap 16 + 8-bit AdamW (8 GB with 28 blocks swapped); 24 GB without swapping",
      comfortableGb: 24,
      source: `${PERF} §1.2 (ai-toolkit README "at least 24GB of VRAM to train FLUX.1"; kohya docs/flux_train_network.md: 24 GB bs2 with --fp8_base, 12 GB with blocks_to_swap 16)`,
    },
    source: `${PERF} §1.2, §1.3 (11,906,077,760 transformer parameters, HF blog flux-qlora)`,
    asOf: "2026-08-23",
  },
  {
    id: "flux1-schnell",
    label: "FLUX.1 [schnell]",
    family: "flux1",
    architecture: "MMDiT rectified-flow transformer (timestep-distilled), same layout as FLUX.1 [dev]",
    hfRepo: "black-forest-labs/FLUX.1-schnell",
    textEncoders: [
      { name: "CLIP ViT-L/14", kind: "clip", bf16Gb: 0.25 },
      { name: "T5-XXL", kind: "t5", bf16Gb: 10 },
    ],
    captionEncoder: "t5",
    nativeResolution: 1024,
    paramsB: 11.9,
    hidden: 3072,
    blocks: 57,
    tokensAtNative: 4352,
    loraParamsPerRank: 1748 * 3072,
    loraStepTflops: { ckpt: 238, noCkpt: 166 },
    vram: {
      minLoraGb: 12,
      minLoraRecipe: "as FLUX.1 [dev]",
      comfortableGb: 24,
      source: `${PERF} §1.2`,
    },
    source: `${PERF} §1.3 (same transformer as dev; T5 length 256 for schnell)`,
    asOf: "2026-08-23",
  },
  {
    id: "flux2-dev",
    label: "FLUX.2 [dev]",
    family: "flux2",
    architecture: "rectified-flow transformer, 8 double + 48 single blocks, d 6144, 32-channel VAE",
    hfRepo: "black-forest-labs/FLUX.2-dev",
    textEncoders: [{ name: "Mistral-Small-3.1 24B", kind: "llm", bf16Gb: 48 }],
    captionEncoder: "llm",
    nativeResolution: 1024,
    paramsB: 32,
    hidden: 6144,
    blocks: 56,
    tokensAtNative: 4608,
    loraParamsPerRank: 1300 * 6144,
    loraStepTflops: { ckpt: 891, noCkpt: 609 },
    vram: {
      minLoraGb: 40,
      minLoraRecipe: "int8 transformer and text encoder (int4 TE + int8 DiT ~22 GB), 96 GB system RAM",
      comfortableGb: 80,
      source: `${PERF} §1.2 (SimpleTuner quickstart/FLUX2.md: bf16 ~76 GB+, int8 everything ~40 GB, int4 TE + int8 DiT ~22 GB)`,
    },
    source: `${PERF} §1.2, §1.3 (32B transformer, BFL via HF blog flux-2.md)`,
    asOf: "2026-08-23",
  },
  {
    id: "flux2-klein-4b",
    label: "FLUX.2 [klein] 4B base",
    family: "flux2",
    architecture: "rectified-flow transformer (FLUX.2 layout), 5 double + 20 single blocks, d 3072 (24 heads x 128)",
    hfRepo: "black-forest-labs/FLUX.2-klein-base-4B",
    textEncoders: [{ name: "Qwen3 4B", kind: "llm", bf16Gb: 8 }],
    captionEncoder: "llm",
    nativeResolution: 1024,
    paramsB: 4,
    // BFL flux2 Klein4BParams (bench/gpu-speed.py KLEIN): hidden 3072; the bench counted 79.5 TFLOPs per step without checkpointing
    hidden: 3072,
    blocks: 25,
    tokensAtNative: 4608,
    loraParamsPerRank: 1300 * 3072,
    loraStepTflops: { ckpt: 114, noCkpt: 79.5 },
    vram: {
      minLoraGb: 16,
      minLoraRecipe: "bf16 transformer (~12 GB) with cached text encoder; int8 ~8 GB",
      comfortableGb: 24,
      source: `${PERF} §1.1-1.2 (SimpleTuner quickstart/FLUX2.md: 4B bf16 ~12 GB / int8 ~8 GB; HF klein blog "4B fits in 24 GB")`,
    },
    source: `${PERF} §1.2, §1.3 (structure assumed, calibrate)`,
    asOf: "2026-08-23",
    verified: false,
    note: "Width and depth from BFL's Klein4BParams (bench/gpu-speed.py); no-checkpointing FLOPs counted by the bench, checkpointed ones scaled by FLUX.1's ratio.",
  },
  {
    id: "flux2-klein-9b",
    label: "FLUX.2 [klein] 9B base",
    family: "flux2",
    architecture: "rectified-flow transformer (FLUX.2 layout), 8 double + 24 single blocks (assumed), d 4096",
    hfRepo: "black-forest-labs/FLUX.2-klein-base-9B",
    textEncoders: [{ name: "Qwen3 8B", kind: "llm", bf16Gb: 16 }],
    captionEncoder: "llm",
    nativeResolution: 1024,
    paramsB: 9,
    hidden: 4096,
    blocks: 32,
    tokensAtNative: 4608,
    loraParamsPerRank: 1300 * 4096,
    loraStepTflops: { ckpt: 245, noCkpt: 166 },
    vram: {
      minLoraGb: 24,
      minLoraRecipe: "int8 transformer (~14 GB) with cached text encoder",
      comfortableGb: 32,
      source: `${PERF} §1.2 (SimpleTuner quickstart/FLUX2.md: 9B bf16 ~22 GB / int8 ~14 GB)`,
    },
    source: `${PERF} §1.2, §1.3 (structure assumed, calibrate)`,
    asOf: "2026-08-23",
    verified: false,
    note: "Block count and width assumed; FLOPs rough.",
  },
  {
    id: "qwen-image",
    label: "Qwen-Image",
    family: "qwen-image",
    architecture: "MMDiT, 60 blocks, d 3072, Wan-style 16-channel VAE",
    hfRepo: "Qwen/Qwen-Image",
    textEncoders: [{ name: "Qwen2.5-VL 7B", kind: "llm", bf16Gb: 16 }],
    captionEncoder: "llm",
    nativeResolution: 1328,
    paramsB: 20,
    hidden: 3072,
    blocks: 60,
    tokensAtNative: 7400,
    loraParamsPerRank: 1400 * 3072,
    loraStepTflops: { ckpt: 620, noCkpt: 430 },
    vram: {
      minLoraGb: 24,
      minLoraRecipe: "fp8 scaled base + blocks_to_swap 16 (musubi-tuner); 42 GB without quantisation",
      comfortableGb: 48,
      source: `${TRAINERS} §2.15 (musubi-tuner docs/qwen_image.md "VRAM Usage Estimates": none 42 GB, fp8 30 GB, +swap 16 24 GB, +swap 45 12 GB)`,
    },
    source: "https://huggingface.co/Qwen/Qwen-Image (20B MMDiT, native 1328x1328)",
    asOf: "2026-08-23",
    verified: false,
    note: "FLOPs scaled from FLUX.1 by width x depth x tokens (ours, rough).",
  },
  {
    id: "zimage-turbo",
    label: "Z-Image Turbo",
    family: "zimage",
    architecture: "single-stream DiT (S3-DiT), 6B, distilled (train with the ostris training adapter or De-Turbo)",
    hfRepo: "Tongyi-MAI/Z-Image-Turbo",
    textEncoders: [{ name: "Qwen3 4B", kind: "llm", bf16Gb: 8 }],
    captionEncoder: "llm",
    nativeResolution: 1024,
    paramsB: 6,
    hidden: 3840,
    blocks: 30,
    tokensAtNative: 4608,
    loraParamsPerRank: 1300 * 3840,
    loraStepTflops: { ckpt: 150, noCkpt: 105 },
    vram: {
      minLoraGb: 16,
      minLoraRecipe: "bf16 base with cached text encoder and gradient checkpointing; fp8 lower",
      comfortableGb: 24,
      source: `${TRAINERS} §2.15, §3.1 (musubi docs/zimage.md fp8 options; ai-toolkit zimage:turbo with training adapter)`,
    },
    source: "https://huggingface.co/Tongyi-MAI/Z-Image-Turbo (6B S3-DiT, Qwen3-4B text encoder)",
    asOf: "2026-08-23",
    verified: false,
    note: "FLOPs scaled from FLUX.1 (ours, rough).",
  },
  {
    id: "sd35-large",
    label: "Stable Diffusion 3.5 Large",
    family: "sd3",
    architecture: "MMDiT, 38 blocks, d 2432, 16-channel VAE",
    hfRepo: "stabilityai/stable-diffusion-3.5-large",
    textEncoders: [
      { name: "CLIP ViT-L/14", kind: "clip", bf16Gb: 0.25 },
      { name: "OpenCLIP ViT-bigG/14", kind: "clip", bf16Gb: 1.4 },
      { name: "T5-XXL", kind: "t5", bf16Gb: 10 },
    ],
    captionEncoder: "t5",
    nativeResolution: 1024,
    paramsB: 8.1,
    hidden: 2432,
    blocks: 38,
    tokensAtNative: 4429,
    loraParamsPerRank: 1200 * 2432,
    loraStepTflops: { ckpt: 150, noCkpt: 105 },
    vram: {
      minLoraGb: 16,
      minLoraRecipe: "fp8 base, cached text encoders, gradient checkpointing",
      comfortableGb: 24,
      source: `${TRAINERS} §2.1, §2.13 L-9 (sd-scripts sd3_train_network.py)`,
    },
    source: "https://huggingface.co/stabilityai/stable-diffusion-3.5-large (8.1B MMDiT, CLIP-L + CLIP-G + T5-XXL)",
    asOf: "2026-08-23",
    verified: false,
    note: "FLOPs scaled from FLUX.1 (ours, rough).",
  },
];

/** The record for a base model id; undefined for an unknown id (the loader reports E_UNKNOWN_BASE_MODEL). */
export function getBaseModel(id: string): BaseModelRecord | undefined {
  return BASE_MODELS.find((m) => m.id === id);
}
