import { BUILTIN_TRAINER } from "../knowledge/builtin-trainer.js";

/** How the built-in trainer's in-training samples merge the LoRA: into buffers kept for the run, or per call. */
export type SampleMergeKind = "buffers" | "per-call";

/**
 * Core's rule for the sample merge (BUILTIN_TRAINER.sampleMerge), the one home of its conditions: a network
 * type it lists over a base held in its own dtype (no `quantize`); per call for perCallArches (also over
 * fp8_matmul's fp8 copies), into buffers for `arches` without fp8 GEMMs. The worker's
 * train/sample_merge.py `applies` follows it (test: sample-merge-sync.spec.ts runs it over the same matrix).
 */
export function sampleMergeKind(arch: string, networkType: string, settings: { quantize: string; fp8Matmul?: boolean }): SampleMergeKind | undefined {
  const m = BUILTIN_TRAINER.sampleMerge;
  if (!(m.networkTypes as readonly string[]).includes(networkType) || settings.quantize !== "none") return undefined;
  if ((m.perCallArches as readonly string[]).includes(arch)) return "per-call";
  return (m.arches as readonly string[]).includes(arch) && !settings.fp8Matmul ? "buffers" : undefined;
}
