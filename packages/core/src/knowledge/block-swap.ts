import type { BaseModelId } from "./base-models.js";
import type { Sourced } from "./types.js";

/**
 * Where `hardware.block_swap` (transformer blocks held in CPU RAM, swapped in per step) compiles
 * to, and how many blocks each trainer allows. Kohya's `--blocks_to_swap` exists only in its DiT
 * scripts (not sdxl_train_network.py); ai-toolkit offloads a fraction of the transformer's layers.
 */
export interface BlockSwapRecord extends Sourced {
  trainer: "kohya" | "ai-toolkit";
  bases: readonly BaseModelId[];
  /** Most blocks the trainer swaps for these bases. */
  maxBlocks: number;
  /** The trainer option it compiles to. */
  option: string;
}

const T = "shared/reference/trainers.md";

export const BLOCK_SWAP: readonly BlockSwapRecord[] = [
  {
    trainer: "kohya",
    bases: ["flux1-dev", "flux1-schnell"],
    maxBlocks: 35,
    option: "--blocks_to_swap",
    source: `${T} §2.2 (sd-scripts docs/flux_train_network.md §6.1: 16 GB swap, 12 GB 16, 10 GB 22, 8 GB 28, max 35 for FLUX.1)`,
    asOf: "2026-02-16",
  },
  {
    trainer: "kohya",
    bases: ["sd35-large"],
    maxBlocks: 36,
    option: "--blocks_to_swap",
    source: `${T} §2.2 (add_dit_training_arguments: --blocks_to_swap in sd3_train_network.py); max = 38 MMDiT blocks minus 2 in flight`,
    asOf: "2026-02-16",
    verified: false,
  },
  {
    trainer: "ai-toolkit",
    bases: ["flux1-dev", "flux1-schnell", "flux2-dev", "flux2-klein-4b", "flux2-klein-9b", "qwen-image", "zimage-turbo"],
    maxBlocks: Number.POSITIVE_INFINITY,
    option: "model.layer_offloading + layer_offloading_transformer_percent",
    source: `${T} §3 (ModelConfig layer_offloading, _transformer_percent; ai-toolkit#291: layer_offloading is the block-swap mechanism; A-5: it turns qfloat8 into float8)`,
    asOf: "2026-08-21",
  },
];

export function getBlockSwap(trainer: string, base: BaseModelId): BlockSwapRecord | undefined {
  return BLOCK_SWAP.find((r) => r.trainer === trainer && r.bases.includes(base));
}

/** Blocks kept on the GPU besides the swapped ones (the one being computed and the one prefetched). */
export const BLOCK_SWAP_IN_FLIGHT: Sourced & { blocks: number } = {
  blocks: 2,
  source: "shared/reference/perf-reliability.md §2.2 (s ≈ k/n_blocks of the block weights, minus 1-2 blocks of prefetch buffer)",
  asOf: "2026-08-23",
};

/**
 * How each trainer can hold the frozen base (base.quantize). The built-in trainer and Kohya refuse
 * int8/nf4 at compile time; ai-toolkit maps fp8/int8/nf4 to its qtypes.
 */
export const TRAINER_QUANTIZATIONS: Sourced & { map: Readonly<Record<string, readonly ("none" | "fp8" | "int8" | "nf4")[]>> } = {
  map: { diffusers: ["none", "fp8"], kohya: ["none", "fp8"], "ai-toolkit": ["none", "fp8", "int8", "nf4"], fal: ["none"] },
  source: "compile/diffusers.ts and compile/kohya (refuse int8/nf4: sd-scripts has --fp8_base only, trainers.md §2.2); ai-toolkit qtypes (trainers.md §3.3)",
  asOf: "2026-12-02",
};
