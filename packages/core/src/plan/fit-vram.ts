import type { Contract } from "../contract/schema.js";
import type { Quantization } from "../contract/base-quantize.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { getBlockSwap, TRAINER_QUANTIZATIONS } from "../knowledge/block-swap.js";
import { resolveTrainSettings } from "./train-settings.js";
import { estimateVramWith, type VramEstimate } from "./vram-model.js";

export interface VramFit {
  quantize: Quantization;
  /** hardware.block_swap to set (undefined: none). */
  blockSwap?: number;
  /** true: hyperparameters.gradient_checkpointing must go on (the contract turned it off and nothing fits without it). */
  gradientCheckpointing?: true;
  estimate: VramEstimate;
  fits: boolean;
}

/**
 * The lightest change of base precision and block swap that brings this contract under `ceilingGb`,
 * by the same VRAM model check uses: precision first (cheaper in speed), then block swap in steps of
 * 4 blocks up to the trainer's maximum, and last, where the contract turned gradient checkpointing
 * off, the same again with it on. `init` writes what this returns and the VRAM rule suggests it,
 * so the two never disagree. When nothing fits, the lowest estimate with fits: false.
 */
export function fitVram(contract: Contract, model: BaseModelRecord, resolution: number, ceilingGb: number): VramFit {
  const fit = fitPrecisionAndSwap(contract, model, resolution, ceilingGb);
  if (fit.fits || contract.hyperparameters.gradient_checkpointing !== false) return fit;
  const ckpt = fitPrecisionAndSwap({ ...contract, hyperparameters: { ...contract.hyperparameters, gradient_checkpointing: true } }, model, resolution, ceilingGb);
  return ckpt.fits || ckpt.estimate.totalGb < fit.estimate.totalGb ? { ...ckpt, gradientCheckpointing: true } : fit;
}

function fitPrecisionAndSwap(contract: Contract, model: BaseModelRecord, resolution: number, ceilingGb: number): VramFit {
  const quants = TRAINER_QUANTIZATIONS.map[contract.trainer.name] ?? ["none"];
  const swap = getBlockSwap(contract.trainer.name, model.id);
  const maxSwap = swap ? Math.min(swap.maxBlocks, model.blocks) : 0;
  const swaps = [0, ...Array.from({ length: Math.floor(maxSwap / 4) }, (_, i) => (i + 1) * 4), ...(maxSwap % 4 ? [maxSwap] : [])];
  let best: VramFit | undefined;
  for (const blocks of swaps) {
    for (const quantize of quants) {
      const variant: Contract = { ...contract, base: { ...contract.base, quantize }, hardware: { ...contract.hardware, block_swap: blocks || undefined } };
      const settings = resolveTrainSettings(variant, { resolution });
      const estimate = estimateVramWith(variant, model, resolution, settings);
      // The precision the run will hold the base in: the built-in trainer's plan picks fp8 itself when
      // only fp8 fits (train-settings.ts), and the estimate is of that; init writes it, not "none".
      const fit: VramFit = { quantize: settings.quantize, blockSwap: blocks || undefined, estimate, fits: estimate.totalGb <= ceilingGb };
      if (fit.fits) return fit;
      if (!best || estimate.totalGb < best.estimate.totalGb) best = fit;
    }
  }
  return best!;
}
