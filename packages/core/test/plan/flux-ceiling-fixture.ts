import { contract } from "../lint/helpers.js";

/**
 * A FLUX.1 [dev] built-in-trainer contract on an H200 with a VRAM ceiling (limits.vram_ceiling_gb):
 * the checkpointing-mode specs vary the ceiling to move the plan between off, full and selective.
 */
export const fluxWithCeiling = (ceiling?: number, patch: Record<string, unknown> = {}) =>
  contract({
    trainer: { name: "diffusers", version: undefined },
    base: { model: "flux1-dev", quantize: "none" },
    hardware: { kind: "local", gpu: "H200", vram_gb: 141, price_per_hour: 3.5 },
    limits: { vram_ceiling_gb: ceiling, max_cost_usd: undefined },
    hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250, optimizer: "adamw" },
    ...patch,
  } as never);

/** Paths with loraspec's cache folder, so a compiled request carries compile_cache_dir. */
export const CACHE_PATHS = { datasetDir: "/p/dataset", outputDir: "/p/out", cacheDir: "/home/u/.cache/loraspec" };
