import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { atomicWrite } from "../fs/atomic-write.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readSmallTextSync } from "../fs/read-small-file.js";
import { shownRunFile } from "./run-files.js";
import type { ProcessJob } from "./train-job.js";

/** Adjusts a job for a resume; returns a note for the log. */
export async function prepareResume(job: ProcessJob, args: string[]): Promise<string | undefined> {
  const strategy = job.resume;
  if (strategy.kind === "kohya-state") {
    const state = newestKohyaState(strategy.outputDir, strategy.outputName);
    if (!state) return "no saved state found: training starts again from step 0";
    const at = args.indexOf("--resume");
    if (at >= 0) args.splice(at, 2);
    args.push("--resume", state);
    return `resuming from ${state}`;
  }
  if (strategy.kind === "worker-request") {
    const text = readSmallTextSync({ file: strategy.requestFile, limit: FILE_LIMITS.runMetadata, shown: shownRunFile(strategy.requestFile) });
    const request = JSON.parse(text) as Record<string, unknown>;
    request.resume_from = "latest";
    await atomicWrite(strategy.requestFile, `${JSON.stringify(request, null, 2)}\n`);
    return "resuming from the latest checkpoint";
  }
  if (strategy.kind === "automatic") return "the trainer resumes from its newest checkpoint in the same folder";
  return "this trainer cannot resume: it starts again";
}

/** sd-scripts state dirs: {name}-step{00000000}-state, {name}-{000000}-state, {name}-state (trainers.md §2.7). */
export function newestKohyaState(outputDir: string, outputName: string): string | undefined {
  let names: string[];
  try {
    names = readdirSync(outputDir);
  } catch {
    return undefined;
  }
  const escaped = outputName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const step = new RegExp(`^${escaped}-step(\\d+)-state$`);
  let best: { name: string; step: number } | undefined;
  for (const name of names) {
    const match = step.exec(name);
    if (!match) continue;
    if (!existsSync(join(outputDir, name, "train_state.json")) && !existsSync(join(outputDir, name))) continue;
    const n = Number(match[1]);
    if (!best || n > best.step) best = { name, step: n };
  }
  if (best) return join(outputDir, best.name);
  const final = `${outputName}-state`;
  return names.includes(final) ? join(outputDir, final) : undefined;
}
