import { trainingSamples } from "../run/training-samples.js";
import type { SamplesResponse } from "./api-types.js";
import { projectRelative } from "../fs/safe-path.js";

/**
 * A run's sample images for the page: run/training-samples.ts (only images inside the run folder;
 * hostile event paths dropped), each path project-relative (what /files/ serves, which checks the
 * real path again when the page asks for it).
 */
export async function runSamples(params: { runDir: string; projectDir: string }): Promise<SamplesResponse["samples"]> {
  const samples = await trainingSamples({ runDir: params.runDir });
  return samples.map(({ file, ...s }) => ({ type: "sample" as const, ...s, path: projectRelative(params.projectDir, file) }));
}
