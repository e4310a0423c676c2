import type { BaseModelId } from "../../knowledge/base-models.js";
import type { Sourced } from "../../knowledge/types.js";

/**
 * One fal.ai trainer endpoint and the names its input fields have (they differ per endpoint:
 * images_data_url vs image_data_url, trigger_word vs trigger_phrase, default_caption).
 */
export interface FalTrainerEndpoint extends Sourced {
  endpoint: string;
  base: BaseModelId;
  zipField: "images_data_url" | "image_data_url";
  /** Where the trigger goes: a trigger field, or `default_caption` (used for images without a .txt). */
  triggerField: "trigger_word" | "trigger_phrase" | "default_caption";
  /** Whether the endpoint takes `learning_rate` (flux-lora-fast-training does not). */
  takesLearningRate: boolean;
  /** How the contract's target maps onto the endpoint's own switch, if it has one. */
  targetField?: { name: string; values: Readonly<Record<"character" | "style" | "product", string | boolean>> };
  /**
   * Crop switches that default to on and crop to a face or a subject: loraspec writes each one
   * explicitly, on only for the targets in `on` (a face crop on a style or product dataset cuts the
   * images down to whatever the detector finds).
   */
  cropFlags?: ReadonlyArray<{ name: string; defaultOn: boolean; on: ReadonlyArray<"character" | "style" | "product"> }>;
  /** The targets the endpoint is built for, when it is built for some only (lint fal-endpoint-target). */
  meantFor?: ReadonlyArray<"character" | "style" | "product">;
}

const SRC = "shared/reference/trainers.md §4.1 (fal-ai/fal-js@381105e libs/client/src/types/endpoints.ts)";
const AS_OF = "2026-08-02";
// The generated types deduplicate identical shapes, so per-endpoint defaults may differ (§4.1 caveat).
const DEDUP = { verified: false, note: "input shape shared with another endpoint in fal-js's generated types" } as const;

export const FAL_TRAINER_ENDPOINTS: readonly FalTrainerEndpoint[] = [
  {
    endpoint: "fal-ai/flux-lora-fast-training",
    base: "flux1-dev",
    zipField: "images_data_url",
    triggerField: "trigger_word",
    takesLearningRate: false,
    // is_style turns off segmentation and auto-captioning; create_masks is for people (faces).
    targetField: { name: "is_style", values: { character: false, style: true, product: false } },
    source: SRC,
    asOf: AS_OF,
  },
  {
    endpoint: "fal-ai/flux-lora-portrait-trainer",
    base: "flux1-dev",
    zipField: "images_data_url",
    triggerField: "trigger_phrase",
    takesLearningRate: true,
    // subject_crop (default true) crops to the portrait subject.
    cropFlags: [{ name: "subject_crop", defaultOn: true, on: ["character"] }],
    meantFor: ["character"],
    source: SRC,
    asOf: AS_OF,
  },
  {
    endpoint: "fal-ai/turbo-flux-trainer",
    base: "flux1-dev",
    zipField: "images_data_url",
    triggerField: "trigger_phrase",
    takesLearningRate: true,
    targetField: { name: "training_style", values: { character: "subject", style: "style", product: "subject" } },
    // face_crop (default true) crops to detected faces: only a character has one.
    cropFlags: [{ name: "face_crop", defaultOn: true, on: ["character"] }],
    source: SRC,
    asOf: AS_OF,
  },
  {
    endpoint: "fal-ai/flux-2-trainer",
    base: "flux2-dev",
    zipField: "image_data_url",
    triggerField: "default_caption",
    takesLearningRate: true,
    source: SRC,
    asOf: AS_OF,
  },
  {
    endpoint: "fal-ai/flux-2-klein-9b-base-trainer",
    base: "flux2-klein-9b",
    zipField: "image_data_url",
    triggerField: "default_caption",
    takesLearningRate: true,
    source: SRC,
    asOf: AS_OF,
    ...DEDUP,
  },
  {
    endpoint: "fal-ai/qwen-image-2512-trainer",
    base: "qwen-image",
    zipField: "image_data_url",
    triggerField: "default_caption",
    takesLearningRate: true,
    source: `${SRC}; trains Qwen-Image-2512`,
    asOf: AS_OF,
  },
  {
    endpoint: "fal-ai/z-image-turbo-trainer-v2",
    base: "zimage-turbo",
    zipField: "image_data_url",
    triggerField: "default_caption",
    takesLearningRate: true,
    source: SRC,
    asOf: AS_OF,
    ...DEDUP,
  },
];

/** The endpoint loraspec uses for a base model when the contract names none. */
export const FAL_DEFAULT_ENDPOINT: Partial<Record<BaseModelId, string>> = {
  "flux1-dev": "fal-ai/flux-lora-fast-training",
  "flux2-dev": "fal-ai/flux-2-trainer",
  "flux2-klein-9b": "fal-ai/flux-2-klein-9b-base-trainer",
  "qwen-image": "fal-ai/qwen-image-2512-trainer",
  "zimage-turbo": "fal-ai/z-image-turbo-trainer-v2",
};
