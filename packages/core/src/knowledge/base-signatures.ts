import type { BaseModelId, ModelFamily } from "./base-models.js";
import type { Sourced } from "./types.js";

/**
 * How to tell a base model's weights apart without loading them: the diffusers pipeline class in
 * model_index.json, the denoiser's config class, and key patterns of a single .safetensors file
 * (header only). Architectures, not sizes: block counts are left out on purpose (tiny test bases
 * share the classes but not the sizes), so FLUX.1 [dev]/[schnell] and klein 4B/9B are one group each.
 */
export interface BaseSignature extends Sourced {
  /** Which loraspec bases weights of this architecture can be. */
  bases: readonly BaseModelId[];
  arch: string;
  family: ModelFamily;
  pipelineClasses: readonly string[];
  denoiserClasses: readonly string[];
  /** Every one of these key prefixes/substrings present in a single file => this architecture. */
  singleFileKeys: readonly (readonly string[])[];
  /** None of these present (tells FLUX.2's BFL files from FLUX.1's). */
  singleFileAbsent?: readonly string[];
}

const DIFFUSERS = "diffusers pipelines (model_index.json _class_name) and the worker's tiny_base.py classes";
const BFL = "BFL / ComfyUI single-file key layouts (sd-scripts flux_utils.py, ComfyUI model_detection.py), read 2026-12-02";
const AS_OF = "2026-12-02";

export const BASE_SIGNATURES: readonly BaseSignature[] = [
  {
    bases: ["sdxl"],
    arch: "SDXL UNet",
    family: "sdxl",
    pipelineClasses: ["StableDiffusionXLPipeline"],
    denoiserClasses: ["UNet2DConditionModel"],
    singleFileKeys: [["conditioner.embedders.1."], ["model.diffusion_model.input_blocks.", "conditioner.embedders."]],
    source: `${DIFFUSERS}; ${BFL}`,
    asOf: AS_OF,
  },
  {
    bases: ["flux1-dev", "flux1-schnell"],
    arch: "FLUX.1 transformer",
    family: "flux1",
    pipelineClasses: ["FluxPipeline"],
    denoiserClasses: ["FluxTransformer2DModel"],
    singleFileKeys: [["double_blocks.0.img_mod.lin.weight"], ["single_transformer_blocks.0.norm.linear.weight"]],
    source: `${DIFFUSERS}; ${BFL}`,
    asOf: AS_OF,
  },
  {
    bases: ["flux2-dev"],
    arch: "FLUX.2 [dev] transformer",
    family: "flux2",
    pipelineClasses: ["Flux2Pipeline"],
    denoiserClasses: ["Flux2Transformer2DModel"],
    singleFileKeys: [],
    source: DIFFUSERS,
    asOf: AS_OF,
  },
  {
    bases: ["flux2-klein-4b", "flux2-klein-9b"],
    arch: "FLUX.2 [klein] transformer",
    family: "flux2",
    pipelineClasses: ["Flux2KleinPipeline"],
    denoiserClasses: ["Flux2Transformer2DModel"],
    singleFileKeys: [],
    source: DIFFUSERS,
    asOf: AS_OF,
  },
  {
    bases: ["flux2-dev", "flux2-klein-4b", "flux2-klein-9b"],
    arch: "FLUX.2 transformer (BFL single file)",
    family: "flux2",
    pipelineClasses: [],
    denoiserClasses: [],
    singleFileKeys: [["double_blocks.0.", "double_stream_modulation_img."]],
    singleFileAbsent: ["double_blocks.0.img_mod.lin.weight"],
    source: BFL,
    asOf: AS_OF,
    verified: false,
  },
  {
    bases: ["qwen-image"],
    arch: "Qwen-Image transformer",
    family: "qwen-image",
    pipelineClasses: ["QwenImagePipeline"],
    denoiserClasses: ["QwenImageTransformer2DModel"],
    singleFileKeys: [["transformer_blocks.0.img_mlp."]],
    source: `${DIFFUSERS}; ${BFL}`,
    asOf: AS_OF,
  },
  {
    bases: ["zimage-turbo"],
    arch: "Z-Image transformer",
    family: "zimage",
    pipelineClasses: ["ZImagePipeline"],
    denoiserClasses: ["ZImageTransformer2DModel"],
    singleFileKeys: [["noise_refiner.", "context_refiner."]],
    source: `${DIFFUSERS}; ${BFL}`,
    asOf: AS_OF,
    verified: false,
  },
  {
    bases: ["sd35-large"],
    arch: "SD3 MMDiT",
    family: "sd3",
    pipelineClasses: ["StableDiffusion3Pipeline"],
    denoiserClasses: ["SD3Transformer2DModel"],
    singleFileKeys: [["joint_blocks.0."]],
    source: `${DIFFUSERS}; ${BFL}`,
    asOf: AS_OF,
  },
];

/** The signature a diffusers class name belongs to. */
export function signatureOfClass(className: string): BaseSignature | undefined {
  return BASE_SIGNATURES.find((s) => s.pipelineClasses.includes(className)) ?? BASE_SIGNATURES.find((s) => s.denoiserClasses.includes(className));
}

/** The signature a single file's tensor names match (substring match on every name). */
export function signatureOfKeys(keys: readonly string[]): BaseSignature | undefined {
  const has = (part: string) => keys.some((k) => k.includes(part));
  return BASE_SIGNATURES.find((s) => s.singleFileKeys.some((all) => all.every(has)) && !(s.singleFileAbsent ?? []).some(has));
}
