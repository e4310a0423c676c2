import { createHash } from "node:crypto";
import { extname, join } from "node:path";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { ShapeRule } from "@loraspec/core/plan/trainer-buckets.js";
import { mapPool } from "./map-pool.js";
import type { ManifestEntry } from "./prep-manifest.js";
import { probeImage, SIZE_PROBLEM_CODES, sizeProblems, type ImageProblem, type ProbedImage } from "./probe-image.js";
import { readImageFile } from "./read-image-file.js";

/**
 * What prep knows of each source image across runs (prepare-dataset.ts runs the steps): its probe,
 * reused from the manifest while its bytes and the settings are unchanged, the name it keeps for
 * life, and what its manifest entry records of it.
 */

/**
 * Step 1 of prep: every candidate's header and content hash, no pixels decoded. A source whose
 * bytes match its manifest entry (same size and sha256) under the same settings (`reuse`) keeps that
 * entry's probe, less its duplicate verdicts (decided again). One progress event per image; returns
 * the probes in completion order.
 */
export async function* probeSources(params: {
  sources: readonly string[];
  datasetDir: string;
  previous: ReadonlyMap<string, ManifestEntry>;
  reuse: boolean;
  resolution: number;
  /** The rule prep shapes images by (its upscale warnings follow it); undefined: square. */
  shapes?: ShapeRule;
  maxPixels: number;
  concurrency: number;
  signal?: AbortSignal;
}): AsyncGenerator<LoraspecEvent, ProbedImage[]> {
  const probed: ProbedImage[] = [];
  let done = 0;
  const started = Date.now();
  for await (const result of mapPool(
    params.sources,
    params.concurrency,
    async (source) => {
      // A file over FILE_LIMITS.image is image-too-large, decided by its stat and never read.
      const got = await readImageFile(join(params.datasetDir, source));
      if (!("bytes" in got)) return { source, size: got.size, sha256: "", width: 0, height: 0, problems: [got.problem] } satisfies ProbedImage;
      const { bytes } = got;
      const old = params.previous.get(source);
      if (params.reuse && old && old.size === bytes.byteLength && old.sha256 === sha256(bytes)) {
        return {
          source,
          size: old.size,
          sha256: old.sha256,
          signature: old.signature,
          width: old.width,
          height: old.height,
          problems: reusedProblems(old, params.resolution, params.shapes),
        } satisfies ProbedImage;
      }
      return probeImage({ source, bytes, resolution: params.resolution, shapes: params.shapes, maxPixels: params.maxPixels, hash: false });
    },
    params.signal,
  )) {
    probed.push(result);
    done++;
    yield prepProgress("scan", done, params.sources.length, started, result.source);
  }
  return probed;
}

/**
 * A reused entry's problems, less its duplicate verdicts (decided again) and its size verdicts, said
 * again by today's sizeProblems (a manifest written before it named ai-toolkit's kept sizes "upscaled",
 * or skipped its small images as too small).
 */
function reusedProblems(old: ManifestEntry, resolution: number, shapes: ShapeRule | undefined): ImageProblem[] {
  const kept = (old.problems as ImageProblem[]).filter((p) => !["duplicate", "near-duplicate", ...SIZE_PROBLEM_CODES].includes(p.code));
  if (kept.some((p) => p.severity === "skip")) return kept;
  return [...kept, ...sizeProblems(old.width, old.height, resolution, undefined, shapes)];
}

/** Output names (without extension): a source keeps the name it had, so its caption stays with it. */
export function assignNames(sources: readonly string[], previous: ReadonlyMap<string, ManifestEntry>): Map<string, string> {
  const names = new Map<string, string>();
  const taken = new Set<string>();
  for (const source of sources) {
    const name = previous.get(source)?.name;
    if (name && !taken.has(name.toLowerCase())) {
      names.set(source, name);
      taken.add(name.toLowerCase());
    }
  }
  for (const source of sources) {
    if (names.has(source)) continue;
    // Sub-folders flatten into the name; a clash (a.jpg and a.png) gets the extension appended.
    const stem = source.slice(0, source.length - extname(source).length).replace(/[\\/]+/g, "__").replace(/[^\p{L}\p{N}._ -]+/gu, "_");
    let name = stem;
    for (let i = 2; taken.has(name.toLowerCase()); i++) name = i === 2 ? `${stem}-${extname(source).slice(1)}` : `${stem}-${i}`;
    names.set(source, name);
    taken.add(name.toLowerCase());
  }
  return names;
}

/** What a manifest entry records of its source image, whatever became of it. */
export function sourceFields(image: ProbedImage) {
  const { source, size, sha256, signature, width, height, problems } = image;
  return { source, size, sha256, signature, width, height, problems };
}

/** A progress event of one of prep's passes, with its rate and time left. */
export function prepProgress(task: string, current: number, total: number, started: number, message: string): LoraspecEvent {
  const seconds = (Date.now() - started) / 1000;
  const rate = seconds > 0 ? current / seconds : undefined;
  return { type: "progress", task, current, total, rate, eta: rate ? (total - current) / rate : undefined, message };
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}
