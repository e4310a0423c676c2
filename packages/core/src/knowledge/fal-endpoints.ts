import type { BaseModelId } from "./base-models.js";
import type { Sourced } from "./types.js";

/**
 * Which base model each fal.ai training endpoint trains, so a contract's `trainer.endpoint` can be
 * checked against `base.model` (and priced at its own rate). `bases: []` marks an endpoint that
 * trains a model that is not a loraspec base (FLUX.1 Kontext): a contract can never use it.
 */
export interface FalEndpointRecord extends Sourced {
  endpoint: string;
  bases: readonly BaseModelId[];
  /** What the endpoint trains, in words. */
  trains: string;
}

const FAL = "shared/reference/trainers.md §4.1 (fal-js @381105e libs/client/src/types/endpoints.ts)";
const AS_OF = "2026-08-23";

export const FAL_ENDPOINTS: readonly FalEndpointRecord[] = [
  { endpoint: "fal-ai/flux-lora-fast-training", bases: ["flux1-dev"], trains: "FLUX.1 [dev]", source: FAL, asOf: AS_OF },
  { endpoint: "fal-ai/flux-lora-portrait-trainer", bases: ["flux1-dev"], trains: "FLUX.1 [dev] portraits", source: FAL, asOf: AS_OF },
  { endpoint: "fal-ai/turbo-flux-trainer", bases: ["flux1-dev"], trains: "FLUX.1 [dev]", source: FAL, asOf: AS_OF },
  { endpoint: "fal-ai/flux-kontext-trainer", bases: [], trains: "FLUX.1 Kontext [dev] (an edit model)", source: FAL, asOf: AS_OF },
  ...(["fal-ai/flux-2-trainer", "fal-ai/flux-2-trainer/edit", "fal-ai/flux-2-trainer-v2", "fal-ai/flux-2-trainer-v2/edit"] as const).map((endpoint) => ({
    endpoint,
    bases: ["flux2-dev"] as const,
    trains: "FLUX.2 [dev]",
    source: FAL,
    asOf: AS_OF,
  })),
  ...(["fal-ai/flux-2-klein-9b-base-trainer", "fal-ai/flux-2-klein-9b-base-trainer/edit"] as const).map((endpoint) => ({
    endpoint,
    bases: ["flux2-klein-9b"] as const,
    trains: "FLUX.2 [klein] 9B base",
    source: FAL,
    asOf: AS_OF,
  })),
  { endpoint: "fal-ai/z-image-trainer", bases: ["zimage-turbo"], trains: "Z-Image", source: FAL, asOf: AS_OF, verified: false, note: "Z-Image base; the Turbo trainer is z-image-turbo-trainer-v2." },
  { endpoint: "fal-ai/z-image-turbo-trainer-v2", bases: ["zimage-turbo"], trains: "Z-Image Turbo", source: FAL, asOf: AS_OF },
  { endpoint: "fal-ai/qwen-image-2512-trainer", bases: ["qwen-image"], trains: "Qwen-Image 2512", source: FAL, asOf: AS_OF },
  { endpoint: "fal-ai/qwen-image-edit-2509-trainer", bases: [], trains: "Qwen-Image-Edit 2509 (an edit model)", source: FAL, asOf: AS_OF },
];

export function getFalEndpoint(endpoint: string): FalEndpointRecord | undefined {
  return FAL_ENDPOINTS.find((e) => e.endpoint === endpoint);
}

/** The endpoints that train `base`. */
export function falEndpointsFor(base: BaseModelId): string[] {
  return FAL_ENDPOINTS.filter((e) => e.bases.includes(base)).map((e) => e.endpoint);
}
