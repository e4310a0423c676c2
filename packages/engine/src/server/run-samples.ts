import { extname, isAbsolute, relative, resolve, sep } from "node:path";
import type { SamplesResponse } from "./api-types.js";
import { readEventsFrom } from "./run-files.js";
import { projectRelative } from "./safe-path.js";

/** What a sample may be: an image the page shows inline (PROJECT_FILE_TYPES serves these as images). */
const SAMPLE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg", ".webp"]);

/**
 * A run's sample images from its event log, for the page and the report: each path made
 * project-relative (what /files/ serves). The log is written by a trainer and may be hostile:
 * a path that leaves the run folder (absolute elsewhere, `..`, NUL) or is not an image is
 * dropped, and /files/ checks the real path again (symlinks) when the page asks for it. A step
 * rendered again after a resume keeps its latest image; the list is ordered by step.
 */
export async function runSamples(params: { runDir: string; projectDir: string }): Promise<SamplesResponse["samples"]> {
  const { events } = await readEventsFrom({ runDir: params.runDir, offset: 0 });
  const runDir = resolve(params.runDir);
  const byPath = new Map<string, SamplesResponse["samples"][number]>();
  for (const { event } of events) {
    if (event.type !== "sample" || typeof event.path !== "string" || event.path.includes("\0")) continue;
    const full = resolve(runDir, event.path);
    const rel = relative(runDir, full);
    if (!rel || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) continue;
    if (!SAMPLE_EXTENSIONS.has(extname(full).toLowerCase())) continue;
    const path = projectRelative(params.projectDir, full);
    byPath.delete(path);
    byPath.set(path, { ...event, path });
  }
  return [...byPath.values()].sort((a, b) => (a.step ?? 0) - (b.step ?? 0));
}
