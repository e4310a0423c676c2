import { extname, isAbsolute, relative, resolve, sep } from "node:path";
import { readAllEvents } from "./run-files.js";

/** What a sample may be: an image shown inline (the page and the report). */
const SAMPLE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg", ".webp"]);

export interface TrainingSample {
  step?: number;
  prompt?: string;
  seed?: number;
  /** Absolute, inside the run folder. */
  file: string;
}

/**
 * The images a run rendered while training (its `sample` events). The event log is written by
 * a trainer and may be hostile: a path that leaves the run folder (absolute elsewhere, `..`, NUL)
 * or is not an image is dropped; whoever serves the file checks its real path again (symlinks).
 * A step rendered again after a resume keeps its latest image; ordered by step.
 */
export async function trainingSamples(params: { runDir: string; eventsFile?: string }): Promise<TrainingSample[]> {
  const runDir = resolve(params.runDir);
  const name = params.eventsFile ? relative(runDir, resolve(params.eventsFile)) : undefined;
  const events = await readAllEvents({ runDir, name });
  const byFile = new Map<string, TrainingSample>();
  for (const { event } of events) {
    if (event.type !== "sample" || typeof event.path !== "string" || event.path.includes("\0")) continue;
    const file = resolve(runDir, event.path);
    const rel = relative(runDir, file);
    if (!rel || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) continue;
    if (!SAMPLE_EXTENSIONS.has(extname(file).toLowerCase())) continue;
    byFile.delete(file);
    byFile.set(file, { step: event.step, prompt: event.prompt, seed: event.seed, file });
  }
  return [...byFile.values()].sort((a, b) => (a.step ?? 0) - (b.step ?? 0));
}
