import { LoraspecError } from "../errors.js";

/**
 * The side the built-in trainer trains at: a multiple of 16 (the VAE downscales by 8 and FLUX-class
 * transformers patch the latent 2x2; its request schema asks for it, compile/worker-request.ts). Every
 * base's native resolution is one (1024; Qwen-Image's 1328). Kohya and ai-toolkit have their own per model
 * (Kohya SDXL square: 32): knowledge/trainer-resolution.ts.
 */
export const TRAINING_SIDE = {
  multiple: 16,
  what: "a positive multiple of 16 (the VAE downscales by 8, FLUX-class transformers patch 2x2)",
  source: "ours: compile/worker-request.ts (resolution multipleOf 16); diffusers VaeImageProcessor (vae_scale_factor 8)",
} as const;

export function isTrainingSide(n: number): boolean {
  return Number.isInteger(n) && n > 0 && n % TRAINING_SIDE.multiple === 0;
}

/**
 * `init --resolution`: the number, or E_USAGE naming the flag when it is no side at all; undefined when not given.
 * Which sides the trainer takes is check's rule, applied by init to the trainer it writes (lint/resolution-rules.ts
 * sideFindings, from recommendContract).
 */
export function parseResolutionFlag(value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === "number" ? value : value.trim() === "" ? NaN : Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    throw new LoraspecError("E_USAGE", `--resolution must be a positive whole number of pixels, got '${value}'`, { field: "dataset.resolution", hint: "e.g. --resolution 512 (dataset.resolution: the square side the images train at)." });
  }
  return n;
}
