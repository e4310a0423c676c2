import type { Contract } from "../contract/schema.js";
import { BUILTIN_TRAINER } from "../knowledge/builtin-trainer.js";
import type { SettingChoice } from "./train-settings.js";

/**
 * How the built-in trainer's in-training samples merge the LoRA (the request's sample_merge): into buffers kept
 * for the run, per call, or not at all (the LoRA path).
 */
export type SampleMergeKind = (typeof BUILTIN_TRAINER.sampleMerge.modes)[number];

const SOURCE = "ours: worker/loraspec_worker/train/sample_merge.py (buffers), sample_merge_call.py (per call), samples.py (compiled); knowledge/builtin-trainer.ts sampleMerge";

/** The settings the rule reads: the base's dtype, fp8 GEMMs, and whether the run compiles its blocks. */
export interface SampleMergeSettings {
  quantize: string;
  fp8Matmul?: boolean;
  compile?: boolean;
}

/**
 * Core's rule for the sample merge (BUILTIN_TRAINER.sampleMerge), the one home of its conditions, with the
 * reason: a network type it lists over a base held in its own dtype (no `quantize`); through the training's
 * compiled blocks for compiledArches when the run compiles, else per call for perCallArches (also over
 * fp8_matmul's fp8 copies); into buffers for `arches` without fp8 GEMMs. The worker builds what the
 * request's sample_merge says (train/sample_merge.py make); the VRAM plan counts the buffers (vram-extras.ts).
 */
function decide(arch: string, networkType: string, settings: SampleMergeSettings): { kind: SampleMergeKind; why: string } {
  const m = BUILTIN_TRAINER.sampleMerge;
  const perCall: readonly string[] = m.perCallArches;
  const compiled: readonly string[] = m.compiledArches;
  const buffered: readonly string[] = m.arches;
  if (!(m.networkTypes as readonly string[]).includes(networkType)) {
    return { kind: "none", why: `none: ${networkType} keeps the LoRA path while sampling (only a plain LoRA's layers merge exactly)` };
  }
  if (settings.quantize !== "none") return { kind: "none", why: `none: an ${settings.quantize} base (base.quantize) keeps the LoRA path while sampling` };
  if (settings.compile && compiled.includes(arch)) {
    return {
      kind: "compiled",
      why: `compiled: the samples run the LoRA path through the training's compiled blocks (graphs of their own for no_grad, kept in the compile cache${settings.fp8Matmul ? "; the training forward's fp8 GEMMs, fused" : ""}); FLUX.1 on an H200: an image 2.4-3.1 s against 4.9-5.0 s merged per call, the steps between samples unchanged. If a compiled sample fails, the rest render eagerly with ${m.compiledWarning}`,
    };
  }
  if (perCall.includes(arch)) {
    const held = settings.fp8Matmul ? "; W is fp8_matmul's fp8 copy dequantized, the other fp8 linears run dequantized too (tiny FLUX.1: ~9,670 -> ~3,900 aten ops per denoising step)" : "";
    return {
      kind: "per_call",
      why: `per_call: while a sample renders, each LoRA layer runs F.linear(x, W + scale x B @ A) with W' made for the call and dropped after it (no memory kept), the plain denoiser instead of the fp32 LoRA path${held}`,
    };
  }
  if (!buffered.includes(arch)) return { kind: "none", why: `none: the merge is built for ${[...buffered, ...perCall].join(", ")}, not ${arch}` };
  if (settings.fp8Matmul) return { kind: "none", why: "none: fp8_matmul keeps no bf16 weights to merge into buffers" };
  return {
    kind: "buffers",
    why: "buffers: before each sample W' = W + scale x B @ A is written into a second copy of the targeted weights, kept for the run (in the VRAM plan), and the sample graph replays the plain UNet (SDXL on the H200: a sample's denoise 1.62 -> 1.0 s)",
  };
}

/** The sample merge for a run that renders samples (core's rule; callers check that samples render). */
export function sampleMergeKind(arch: string, networkType: string, settings: SampleMergeSettings): SampleMergeKind {
  return decide(arch, networkType, settings).kind;
}

/**
 * The request's sample_merge and the plan's choice: sampleMergeKind's answer for the run's arch, network type
 * and resolved base settings; "none" when the run renders no samples (no choice listed then: nothing to merge).
 */
export function sampleMergeFor(contract: Contract, arch: string, settings: SampleMergeSettings & { fp8Matmul: boolean; compile: boolean }): { sampleMerge: SampleMergeKind; choice?: SettingChoice } {
  if (!(contract.samples.every > 0)) return { sampleMerge: "none" };
  const { kind, why } = decide(arch, contract.network.type, settings);
  const measured = MEASURED[kind];
  return { sampleMerge: kind, choice: { setting: "sample_merge", value: kind, why, source: measured ? `${SOURCE}; ${measured}` : SOURCE } };
}

const MEASURED: Partial<Record<SampleMergeKind, string>> = {
  buffers: "bench/RESULTS.md (SDXL, samples on merged weights, H200 2026-12-03; bench/data/gpu-wholerun-h200-2026-12-03-sdxl600-samplemerge.jsonl)",
  compiled:
    "bench/RESULTS.md (FLUX.1, samples through the compiled blocks, H200 2026-12-06; bench/data/gpu-wholerun-h200-2026-12-06-flux1-compiled-samples.jsonl, bench/data/sample-path-h200-2026-12-06-flux1-compiled.jsonl)",
};
