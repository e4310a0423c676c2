import type { ModelFamily } from "./base-models.js";
import type { Sourced } from "./types.js";

/**
 * What Kohya sd-scripts and ai-toolkit do with a training side (dataset.resolution, each
 * dataset.buckets.resolutions entry) that is off their model's step. Neither checks the side itself.
 *
 * - square (dataset.aspect: square): the image is resized and cropped to side x side, the VAE encodes it
 *   to floor(side / 8) latent px (its three stride-2 convs pad right/bottom by one: floor each time), and
 *   the model needs that latent on `latentMultiple`; off it, the first step fails. A side the latent fits
 *   but that is off `multiple` (e.g. 1030 -> 128 latent px) starts, training on floor(side / 8) * 8 px of
 *   the image. `multiple` undefined: the model takes any latent.
 * - bucketed (dataset.aspect: buckets): the trainer rounds the side silently: Kohya's square bucket is
 *   floor(side / step) * step with the contract's dataset.buckets.step (sd-scripts' bucket_reso_steps);
 *   ai-toolkit picks per image the largest area <= side² on its model's `divisibility`.
 */
export interface TrainerSideRecord extends Sourced {
  trainer: "kohya" | "ai-toolkit";
  family: ModelFamily;
  square: { multiple?: number; latentMultiple?: number; why: string; source: string };
  bucketed: { rounding: "kohya-square-bucket" } | { rounding: "ai-toolkit-area"; divisibility: number; source: string };
}

/** The VAE's downscale for every family these trainers train here (SDXL, FLUX.1/2, Qwen-Image, Z-Image). */
export const VAE_SCALE = {
  px: 8,
  source:
    "diffusers models/autoencoders (Encoder Downsample2D: F.pad(0,1,0,1), Conv2d k3 s2 p0, three times); " +
    "kohya-ss/sd-scripts@ae72efb library/flux_models.py L120-135 (Downsample: pad (0,1,0,1), stride 2, padding 0)",
  asOf: "2026-12-05",
} as const satisfies Sourced & Record<string, unknown>;

const SD = "kohya-ss/sd-scripts@ae72efb (v0.10.1)";
const AT = "ostris/ai-toolkit@27a03a9";
const KOHYA_BUCKETS = `${SD} library/model_util.py L1316-1344 (make_bucket_resolutions: square bucket int(sqrt(max_area) // divisible) * divisible); sdxl/flux_train_network.py verify_bucket_reso_steps(32)`;
const AT_BUCKETS = `${AT} toolkit/buckets.py L17-47 (get_bucket_for_image_size: largest area <= resolution² on divisibility); toolkit/data_loader.py L394-395 (bucket_tolerance = sd.get_bucket_divisibility())`;
const AT_SQUARE_RESIZE = `${AT} toolkit/dataloader_mixins.py L961-964 (buckets: false: CenterCrop then resize to resolution x resolution)`;
const ASOF = "2026-12-05";

export const TRAINER_SIDES: readonly TrainerSideRecord[] = [
  {
    trainer: "kohya",
    family: "sdxl",
    square: {
      multiple: 32,
      latentMultiple: 4,
      why: "the SDXL U-Net downsamples the latent twice and concatenates each skip without resizing",
      source: `${SD} library/sdxl_original_unet.py L355-362 (Downsample2D: Conv2d stride 2), L790 (Upsample2D: interpolate scale_factor 2), L1110 (torch.cat([h, hs.pop()])); library/train_util.py L1047-1048 (no buckets: one (resolution, resolution) bucket)`,
    },
    bucketed: { rounding: "kohya-square-bucket" },
    source: KOHYA_BUCKETS,
    asOf: ASOF,
  },
  {
    trainer: "kohya",
    family: "flux1",
    square: {
      multiple: 16,
      latentMultiple: 2,
      why: "FLUX.1 packs the latent in 2x2 patches",
      source: `${SD} library/flux_utils.py L433-438 (pack_latents: rearrange with ph=2, pw=2), flux_train_network.py L336; library/train_util.py L1047-1048 (no buckets: one (resolution, resolution) bucket)`,
    },
    bucketed: { rounding: "kohya-square-bucket" },
    source: KOHYA_BUCKETS,
    asOf: ASOF,
  },
  {
    trainer: "ai-toolkit",
    family: "sdxl",
    square: {
      why: "ai-toolkit trains SDXL on diffusers' UNet2DConditionModel, which passes the skip's size to each upsampler when the latent is off its factor (forward_upsample_size)",
      source: `${AT_SQUARE_RESIZE}; diffusers models/unets/unet_2d_condition.py (forward_upsample_size)`,
    },
    bucketed: { rounding: "ai-toolkit-area", divisibility: 16, source: `${AT} toolkit/stable_diffusion_model.py L289-297 (get_bucket_divisibility: 2^(4-1) * 2 for SDXL)` },
    source: AT_BUCKETS,
    asOf: ASOF,
  },
  {
    trainer: "ai-toolkit",
    family: "flux1",
    square: {
      multiple: 16,
      latentMultiple: 2,
      why: "FLUX.1 packs the latent in 2x2 patches",
      source: `${AT_SQUARE_RESIZE}; toolkit/stable_diffusion_model.py L2158-2163 (rearrange 'b c (h ph) (w pw)', ph=2, pw=2)`,
    },
    bucketed: { rounding: "ai-toolkit-area", divisibility: 32, source: `${AT} toolkit/stable_diffusion_model.py L289-297 (get_bucket_divisibility: 2^(4-1) * 2 * 2 for FLUX)` },
    source: AT_BUCKETS,
    asOf: ASOF,
  },
  {
    trainer: "ai-toolkit",
    family: "flux2",
    square: {
      multiple: 16,
      latentMultiple: 2,
      why: "the FLUX.2 autoencoder patchifies its latent 2x2 when it encodes",
      source: `${AT_SQUARE_RESIZE}; extensions_built_in/diffusion_models/flux2/src/autoencoder.py L413-422 (encode: rearrange '(i pi) (j pj)', ps 2x2)`,
    },
    bucketed: { rounding: "ai-toolkit-area", divisibility: 16, source: `${AT} extensions_built_in/diffusion_models/flux2/flux2_model.py L88-89 (get_bucket_divisibility: 16)` },
    source: AT_BUCKETS,
    asOf: ASOF,
  },
  {
    trainer: "ai-toolkit",
    family: "qwen-image",
    square: {
      multiple: 16,
      latentMultiple: 2,
      why: "Qwen-Image packs the latent in 2x2 patches (a view that needs an even latent)",
      source: `${AT_SQUARE_RESIZE}; extensions_built_in/diffusion_models/qwen_image/qwen_image.py L330-339 (view(b, c, h // ps, ps, w // ps, ps), patch_size 2)`,
    },
    bucketed: { rounding: "ai-toolkit-area", divisibility: 32, source: `${AT} extensions_built_in/diffusion_models/qwen_image/qwen_image.py L84-85 (get_bucket_divisibility: 16 * 2)` },
    source: AT_BUCKETS,
    asOf: ASOF,
  },
  {
    trainer: "ai-toolkit",
    family: "zimage",
    square: {
      multiple: 16,
      latentMultiple: 2,
      why: "Z-Image's transformer patchifies the latent 2x2 (a view that needs an even latent)",
      source: `${AT_SQUARE_RESIZE}; toolkit/models/v2/z_image.py (diffusers ZImageTransformer2DModel: image.view(C, F_tokens, pF, H_tokens, pH, W_tokens, pW), patch 2)`,
    },
    bucketed: { rounding: "ai-toolkit-area", divisibility: 16, source: `${AT} extensions_built_in/diffusion_models/z_image/z_image.py L81-82 (get_bucket_divisibility: 8 * 2)` },
    source: AT_BUCKETS,
    asOf: ASOF,
  },
];

/** The record for a trainer and family; undefined where loraspec compiles no such run (Kohya SD3.5) or the trainer is another. */
export function getTrainerSide(trainer: string, family: ModelFamily): TrainerSideRecord | undefined {
  return TRAINER_SIDES.find((r) => r.trainer === trainer && r.family === family);
}

/**
 * init without --resolution, over a folder whose images are smaller than the base's native side:
 * it trains at the largest side the images reach (and the trainer takes) rather than upscale every
 * image to native (check's image-below-native: "upscaled images train blur"), as long as that side
 * is at least `minShare` of native; below that the images are the problem, so init keeps native and
 * check names the small images.
 */
export const INIT_SIDE_FROM_IMAGES = {
  minShare: 0.75,
  source: "ours: the guide's native-resolution advice (shared/reference/trainers.md §7) weighed against upscaling blur; 0.75 keeps SDXL at >= 768 and Qwen-Image at >= 1008",
  asOf: "2026-12-05",
} as const satisfies Sourced & Record<string, unknown>;
