import { join, resolve } from "node:path";
import { assertOutputIsNew } from "./same-file.js";

/**
 * The files `loraspec sample` writes into its --out folder: `<prompt index, 2 digits>-<seed>.png`
 * per prompt x seed, in render order. The CLI sends these names to the worker as the request's `files`
 * (worker/loraspec_worker/sample.py writes what it is given), so the names checked here are the names
 * written; packages/cli/test/sample.spec.ts renders a tiny base and compares the worker's paths.
 */
export function sampleImagePaths(outDir: string, promptCount: number, seeds: readonly number[]): string[] {
  return [...new Set(sampleImageNames(promptCount, seeds).map((name) => join(resolve(outDir), name)))];
}

/** The file name of each prompt x seed, in render order (the request's `files`: the worker writes these names). */
export function sampleImageNames(promptCount: number, seeds: readonly number[]): string[] {
  return Array.from({ length: promptCount }, (_, pi) => seeds.map((seed) => `${String(pi).padStart(2, "0")}-${seed}.png`)).flat();
}

/**
 * Refuses, before anything renders, a sample run that would replace an existing file in its
 * folder (E_FILE_EXISTS naming the first such file) unless `overwrite`, as convert and merge refuse
 * an existing output. Only the files the run would write are looked at: other files in the folder
 * are never touched, and a folder that exists is fine.
 */
export async function assertSampleOutputsAreNew(params: { outDir: string; promptCount: number; seeds: readonly number[]; overwrite?: boolean }): Promise<void> {
  if (params.overwrite) return;
  for (const output of sampleImagePaths(params.outDir, params.promptCount, params.seeds)) {
    await assertOutputIsNew({
      output,
      inputs: [],
      field: "--out",
      hint: "Pass --out with another folder, or --force to replace the images this run writes (other files in the folder are left alone).",
    });
  }
}
