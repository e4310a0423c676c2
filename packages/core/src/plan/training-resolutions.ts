import type { Contract } from "../contract/schema.js";

/**
 * The one list of resolutions a run trains at, ascending: with dataset.aspect: buckets, every
 * dataset.buckets.resolutions entry at most `resolution` and `resolution` itself (the resolved
 * dataset.resolution, or the base's native one); with aspect: square, `resolution` alone. Entries are
 * kept as written (1000 stays 1000, on the trainer's step or not): the compilers write exactly this
 * list (Kohya's one [[datasets]] per entry, ai-toolkit's resolution list, the built-in trainer's
 * buckets via plan/buckets.ts), and the plan counts and times exactly it (plan/epoch.ts copies per
 * epoch, plan/walltime.ts meanTrainingArea, plan/trainer-buckets.ts shapes). An entry above
 * `resolution` is left out here; resolveBuckets refuses it (E_CONTRACT_INVALID) before any compiler
 * writes it. Pure. Held to the compiled configs by test/plan/training-resolutions.spec.ts.
 */
export function trainingResolutions(contract: Contract, resolution: number): number[] {
  return resolutionList(contract.dataset.aspect === "buckets" ? (contract.dataset.buckets?.resolutions ?? []) : [], resolution);
}

/** trainingResolutions from dataset.buckets.resolutions (`extra`) alone, for a run with aspect: buckets. */
export function resolutionList(extra: readonly number[], resolution: number): number[] {
  return [...new Set([...extra.filter((r) => r <= resolution), resolution])].sort((a, b) => a - b);
}
