import type { Sourced } from "./types.js";

/**
 * What training more modules costs per step: the built-in trainer re-timed on an H200 with the LoRA
 * on every linear of the transformer blocks (all-linear) against the same bench rows with the
 * attention preset (issue 22, 2026-12-02: bench/gpu-speed.py --configs 0,4,10,20 --steps 30; 1024²,
 * batch 1, rank 16, bf16 base). `fast` is the row with the run's speed levers (SDXL: whole-step
 * CUDA graph; FLUX.1: regional compile + fp8 GEMMs), `eager` without. The all-linear rows' memory:
 * knowledge/vram.ts VRAM_ALL_LINEAR_EXTRA. FLUX.2 [klein] 4B's rows stand for the FLUX.2 family; the other
 * FLUX-class transformers take FLUX.1's.
 */
export interface TargetSpeedRecord extends Sourced {
  /** The measured model family; other FLUX-class transformers take FLUX.1's ratio (derived). */
  family: "sdxl" | "flux1" | "flux2";
  levers: "fast" | "eager";
  /** LoRA modules of the all-linear row (diffusers modules). */
  modules: number;
  allLinearSecondsPerStep: number;
  attentionSecondsPerStep: number;
}

const SRC = "issue 22 (H200, 2026-12-02, bench/gpu-speed.py --configs 0,4,10,20 --steps 30, re-timed with every linear of the transformer blocks)";
const AS_OF = "2026-12-02";
const KLEIN_SRC = "issue 22: bench/gpu-speed.py --only klein4b --configs 16,17 --targets all-linear --steps 30 (H200, 2026-12-02 20:11 UTC), bench/data/gpu-speed-h200-2026-12-02-klein4b-all-linear.md";

export const TARGET_SPEEDS: readonly TargetSpeedRecord[] = [
  { family: "sdxl", levers: "fast", modules: 722, allLinearSecondsPerStep: 0.134, attentionSecondsPerStep: 0.106, source: SRC, asOf: AS_OF, note: "whole-step CUDA graph; Kohya's exact 722 modules" },
  { family: "sdxl", levers: "eager", modules: 722, allLinearSecondsPerStep: 0.668, attentionSecondsPerStep: 0.504, source: SRC, asOf: AS_OF },
  { family: "flux1", levers: "fast", modules: 495, allLinearSecondsPerStep: 0.484, attentionSecondsPerStep: 0.403, source: SRC, asOf: AS_OF, note: "compile + fp8 GEMMs; 495 = the 494 block linears + the final proj_out a bare suffix also matched" },
  { family: "flux1", levers: "eager", modules: 495, allLinearSecondsPerStep: 0.701, attentionSecondsPerStep: 0.565, source: SRC, asOf: AS_OF },
  // FLUX.2 [klein] 4B: the all-linear rows (80 fused modules in BFL's layout = 100 diffusers modules) of 2026-12-02
  // against the attention rows of 2026-11-29 (same card kind, an earlier lease: knowledge/train-speed.ts).
  { family: "flux2", levers: "fast", modules: 100, allLinearSecondsPerStep: 0.218, attentionSecondsPerStep: 0.208, source: KLEIN_SRC, asOf: AS_OF, note: "regional compile; attention row from 2026-11-29" },
  { family: "flux2", levers: "eager", modules: 100, allLinearSecondsPerStep: 0.319, attentionSecondsPerStep: 0.292, source: KLEIN_SRC, asOf: AS_OF, note: "attention row from 2026-11-29" },
];

/**
 * attention-mlp is not measured: it takes all-linear's ratio (an upper bound: the modules all-linear
 * adds are FLUX's modulation linears, which run on one vector per sample, and SDXL's 22 proj_in/out
 * of 722).
 */
export const ATTENTION_MLP_AS_ALL_LINEAR: Sourced = {
  source: "ours: diffusers transformer_flux.py (norm1.linear takes temb, one vector per sample); SDXL 700 of 722 modules are attention + MLP (knowledge/lora-targets.ts)",
  asOf: AS_OF,
};
