import type { Contract } from "../contract/schema.js";
import { BUILTIN_TRAINER } from "../knowledge/builtin-trainer.js";
import type { SettingChoice } from "./train-settings.js";

/**
 * How the built-in trainer's in-training samples merge the LoRA (the request's sample_merge): into buffers kept
 * for the run, per call, or not at all (the LoRA path).
 */
export type SampleMergeKind = (typeof BUILTIN_TRAINER.sampleMerge.modes)[number];

const SOURCE = "ours: worker/loraspec_worker/train/sample_merge.py (buffers), sample_merge_call.py (per call); knowledge/builtin-trainer.ts sampleMerge";

/**
 * Core's rule for the sample merge (BUILTIN_TRAINER.sampleMerge), the one home of its conditions, with the
 * reason: a network type it lists over a base held in its own dtype (no `quantize`); per call for perCallArches
 * (also over fp8_matmul's fp8 copies), into buffers for `arches` without fp8 GEMMs. The worker builds what the
 * request's sample_merge says (train/sample_merge.py make); the VRAM plan counts the buffers (vram-extras.ts).
 */
function decide(arch: string, networkType: string, settings: { quantize: string; fp8Matmul?: boolean }): { kind: SampleMergeKind; why: string } {
  const m = BUILTIN_TRAINER.sampleMerge;
  const perCall: readonly string[] = m.perCallArches;
  const buffered: readonly string[] = m.arches;
  if (!(m.networkTypes as readonly string[]).includes(networkType)) {
    return { kind: "none", why: `none: ${networkType} keeps the LoRA path while sampling (only a plain LoRA's layers merge exactly)` };
  }
  if (settings.quantize !== "none") return { kind: "none", why: `none: an ${settings.quantize} base (base.quantize) keeps the LoRA path while sampling` };
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
export function sampleMergeKind(arch: string, networkType: string, settings: { quantize: string; fp8Matmul?: boolean }): SampleMergeKind {
  return decide(arch, networkType, settings).kind;
}

/**
 * The request's sample_merge and the plan's choice: sampleMergeKind's answer for the run's arch, network type
 * and resolved base settings; "none" when the run renders no samples (no choice listed then: nothing to merge).
 */
export function sampleMergeFor(contract: Contract, arch: string, settings: { quantize: string; fp8Matmul: boolean }): { sampleMerge: SampleMergeKind; choice?: SettingChoice } {
  if (!(contract.samples.every > 0)) return { sampleMerge: "none" };
  const { kind, why } = decide(arch, contract.network.type, settings);
  return { sampleMerge: kind, choice: { setting: "sample_merge", value: kind, why, source: kind === "buffers" ? `${SOURCE}; ${SAMPLE_MERGE_MEASURED}` : SOURCE } };
}

const SAMPLE_MERGE_MEASURED = "bench/RESULTS.md (SDXL, samples on merged weights, H200 2026-12-03; bench/data/gpu-wholerun-h200-2026-12-03-sdxl600-samplemerge.jsonl)";
