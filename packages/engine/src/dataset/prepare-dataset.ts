import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { basename, dirname, extname, join, resolve } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { aspectBuckets, pickBucket, type CropBox, type Size } from "./crop-geometry.js";
import { dedupeImages, type DuplicateCluster } from "./dedupe.js";
import { listDatasetFiles } from "./list-dataset-files.js";
import { mapPool } from "./map-pool.js";
import { MAX_INPUT_PIXELS, NEAR_DUPLICATE_HAMMING } from "./prep-knowledge.js";
import { MANIFEST_FILE, readPrepManifest, writePrepManifest, type ManifestEntry, type PrepManifest } from "./prep-manifest.js";
import { probeImage, type ImageProblem, type ProbedImage } from "./probe-image.js";
import { processImage } from "./process-image.js";

export interface PrepareDatasetParams {
  /** Folder with the user's originals (read only). */
  datasetDir: string;
  /** New folder for prepared images, captions and the manifest (default `.loraspec/prepared` beside the dataset's project). */
  outDir: string;
  /** Native training resolution of the base model (1024 for SDXL and FLUX). */
  resolution: number;
  aspect?: "square" | "buckets";
  crop?: "center" | "attention";
  format?: "png" | "jpeg";
  /** Colour that transparent pixels are flattened onto. */
  background?: string;
  maxPixels?: number;
  nearDuplicateThreshold?: number;
  /** Sources (relative paths) to keep over their duplicates. */
  pinned?: readonly string[];
  captionExtension?: string;
  /** Images in flight at once (default: CPU count). */
  concurrency?: number;
  signal?: AbortSignal;
}

export interface PrepSummary {
  datasetDir: string;
  outDir: string;
  manifest: string;
  /** Files that looked like images by extension. */
  candidates: number;
  /** Images in the prepared folder now. */
  outputs: number;
  /** Of those, written in this run (new or changed). */
  processed: string[];
  unchanged: number;
  /** Sources whose outputs were removed (source deleted, now a duplicate, or now skipped). */
  removed: string[];
  skipped: Array<{ source: string; code: string; message: string }>;
  warnings: Array<{ source: string; code: string; message: string }>;
  duplicates: DuplicateCluster[];
  /** Non-image, non-caption files found (never counted as images). */
  otherFiles: string[];
  captionsCopied: number;
  captionsMissing: number;
}

/**
 * `loraspec prep`: scan, validate, dedupe, crop and resize a dataset into a new folder, with a
 * manifest that makes re-runs incremental. One bad file never stops the others: each becomes a
 * `warning` event and a `skipped` row. The originals are only ever read.
 */
export async function* prepareDataset(params: PrepareDatasetParams): AsyncGenerator<LoraspecEvent, PrepSummary> {
  const datasetDir = resolve(params.datasetDir);
  const outDir = resolve(params.outDir);
  if (outDir === datasetDir) {
    throw new LoraspecError("E_USAGE", "the prepared folder must not be the dataset folder (originals are never overwritten)", { hint: "pass a different --out" });
  }
  const captionExt = params.captionExtension ?? ".txt";
  const settings = {
    resolution: params.resolution,
    aspect: params.aspect ?? "square",
    crop: params.crop ?? "center",
    format: params.format ?? "png",
    background: params.background ?? "#ffffff",
    maxPixels: params.maxPixels ?? MAX_INPUT_PIXELS.value,
  };
  const threshold = params.nearDuplicateThreshold ?? NEAR_DUPLICATE_HAMMING.value;
  const concurrency = params.concurrency ?? Math.max(1, availableParallelism());
  const signal = params.signal;
  const manifestPath = join(outDir, MANIFEST_FILE);

  yield { type: "phase", name: "scan", message: datasetDir };
  const files = await listDatasetFiles({ dir: datasetDir, captionExtension: captionExt, exclude: [outDir] });
  if (files.images.length === 0) {
    throw new LoraspecError("E_DATASET_EMPTY", `no images in ${datasetDir}`, {
      file: datasetDir,
      hint: `put JPEG, PNG, WebP, AVIF, TIFF or GIF files there${files.other.length ? ` (found ${files.other.length} other files)` : ""}`,
    });
  }
  const previous = await readPrepManifest({ path: manifestPath });
  const sameSettings = previous !== undefined && stableJson(previous.settings) === stableJson(settings);
  const previousBySource = new Map((previous?.entries ?? []).map((e) => [e.source, e]));

  // 1. Probe every candidate (hash always; decode only what changed since the last run).
  const probed: ProbedImage[] = [];
  let done = 0;
  const started = Date.now();
  for await (const result of mapPool(
    files.images,
    concurrency,
    async (source) => {
      let bytes: Buffer;
      try {
        bytes = await readFile(join(datasetDir, source));
      } catch (error) {
        return { source, size: 0, sha256: "", width: 0, height: 0, problems: [{ code: "unreadable", severity: "skip", message: String((error as Error).message) }] } satisfies ProbedImage;
      }
      const old = previousBySource.get(source);
      if (sameSettings && old && old.size === bytes.byteLength && old.sha256 === sha256(bytes)) {
        return {
          source,
          size: old.size,
          sha256: old.sha256,
          dhash: old.dhash,
          width: old.width,
          height: old.height,
          problems: old.problems.filter((p) => p.code !== "duplicate" && p.code !== "near-duplicate") as ImageProblem[],
        } satisfies ProbedImage;
      }
      return probeImage({ source, bytes, resolution: params.resolution, maxPixels: settings.maxPixels });
    },
    signal,
  )) {
    probed.push(result);
    done++;
    yield progress("scan", done, files.images.length, started, result.source);
  }
  throwIfAborted(signal);
  probed.sort((a, b) => (a.source < b.source ? -1 : 1));

  // 2. Report problems and dedupe what is usable.
  const summary: PrepSummary = {
    datasetDir,
    outDir,
    manifest: manifestPath,
    candidates: files.images.length,
    outputs: 0,
    processed: [],
    unchanged: 0,
    removed: [],
    skipped: [],
    warnings: [],
    duplicates: [],
    otherFiles: files.other,
    captionsCopied: 0,
    captionsMissing: 0,
  };
  for (const image of probed) {
    for (const problem of image.problems) {
      const row = { source: image.source, code: problem.code, message: problem.message };
      (problem.severity === "skip" ? summary.skipped : summary.warnings).push(row);
      yield { type: "warning", code: problem.code, message: `${image.source}: ${problem.message}${problem.severity === "skip" ? " (skipped)" : ""}`, file: image.source };
    }
  }
  const usable = probed.filter((p) => !p.problems.some((x) => x.severity === "skip"));
  yield { type: "phase", name: "dedupe", message: `${usable.length} usable images, Hamming <= ${threshold}` };
  summary.duplicates = dedupeImages({ images: usable, threshold, pinned: params.pinned });
  const duplicateOf = new Map<string, { keep: string; kind: "exact" | "near" }>();
  const shaOf = new Map(usable.map((u) => [u.source, u.sha256]));
  for (const cluster of summary.duplicates) {
    for (const drop of cluster.drop) duplicateOf.set(drop, { keep: cluster.keep, kind: shaOf.get(drop) === shaOf.get(cluster.keep) ? "exact" : "near" });
    yield {
      type: "warning",
      code: cluster.kind === "exact" ? "duplicate" : "near-duplicate",
      message: `${cluster.kind === "exact" ? "exact" : "near"} duplicates: keeping ${cluster.keep}, leaving out ${cluster.drop.join(", ")}`,
      file: cluster.keep,
    };
    for (const drop of cluster.drop) {
      const exact = duplicateOf.get(drop)!.kind === "exact";
      summary.skipped.push({ source: drop, code: exact ? "duplicate" : "near-duplicate", message: `${exact ? "exact copy" : "near duplicate"} of ${cluster.keep}` });
    }
  }
  const kept = usable.filter((p) => !duplicateOf.has(p.source));

  // 3. Names: a source keeps its name for life, so its caption stays with it.
  const names = assignNames(kept.map((k) => k.source), previousBySource);
  const buckets = settings.aspect === "buckets" ? aspectBuckets(settings.resolution) : undefined;
  const outputExt = settings.format === "png" ? ".png" : ".jpg";
  await mkdir(outDir, { recursive: true });

  yield { type: "phase", name: "prep", message: `${kept.length} images -> ${outDir}` };
  const entries = new Map<string, ManifestEntry>();
  const toProcess: Array<{ image: ProbedImage; entry: ManifestEntry; target: Size }> = [];
  for (const image of kept) {
    const name = names.get(image.source)!;
    const target = buckets ? pickBucket(image, buckets) : { width: settings.resolution, height: settings.resolution };
    const old = previousBySource.get(image.source);
    const entry: ManifestEntry = {
      source: image.source,
      size: image.size,
      sha256: image.sha256,
      dhash: image.dhash,
      width: image.width,
      height: image.height,
      status: "prepared",
      problems: image.problems,
      name,
      output: `${name}${outputExt}`,
      outputWidth: target.width,
      outputHeight: target.height,
      caption: `${name}${captionExt}`,
      crop: old?.crop,
      sidecarSha256: old?.sidecarSha256,
      captionSha256: old?.captionSha256,
    };
    entries.set(image.source, entry);
    const upToDate =
      sameSettings && old?.status === "prepared" && old.sha256 === image.sha256 && old.output === entry.output && (await exists(join(outDir, entry.output!)));
    if (upToDate) summary.unchanged++;
    else toProcess.push({ image, entry, target });
  }

  done = 0;
  const prepStarted = Date.now();
  for await (const result of mapPool(
    toProcess,
    concurrency,
    async ({ image, entry, target }) => {
      try {
        const bytes = await readFile(join(datasetDir, image.source));
        const out = await processImage({
          bytes,
          source: image,
          settings: { target, crop: settings.crop, format: settings.format, background: settings.background, maxPixels: settings.maxPixels },
        });
        await atomicWrite(join(outDir, entry.output!), out.data);
        entry.crop = out.crop as CropBox;
        return { entry, error: undefined };
      } catch (error) {
        return { entry, error: String((error as Error).message ?? error).split("\n")[0] };
      }
    },
    signal,
  )) {
    done++;
    if (result.error) {
      // Decoding the full image can still fail where the thumbnail did not: report, never stop.
      entries.delete(result.entry.source);
      summary.skipped.push({ source: result.entry.source, code: "unreadable", message: result.error });
      yield { type: "warning", code: "unreadable", message: `${result.entry.source}: ${result.error} (skipped)`, file: result.entry.source };
    } else {
      summary.processed.push(result.entry.source);
    }
    yield progress("prep", done, toProcess.length, prepStarted, result.entry.source);
  }
  throwIfAborted(signal);

  // 4. Captions follow their image: copy sidecars in, never clobber a hand edit.
  for (const entry of entries.values()) {
    const captionPath = join(outDir, entry.caption!);
    const sidecarPath = join(datasetDir, dirname(entry.source), `${basename(entry.source, extname(entry.source))}${captionExt}`);
    const sidecar = await readOptional(sidecarPath);
    const current = await readOptional(captionPath);
    const sidecarHash = sidecar === undefined ? undefined : sha256(sidecar);
    const currentHash = current === undefined ? undefined : sha256(current);
    const untouched = current !== undefined && currentHash === entry.captionSha256;
    if (sidecar !== undefined && (current === undefined || (untouched && sidecarHash !== entry.sidecarSha256))) {
      await atomicWrite(captionPath, sidecar);
      entry.sidecarSha256 = sidecarHash;
      entry.captionSha256 = sidecarHash;
      summary.captionsCopied++;
    } else if (current === undefined) {
      summary.captionsMissing++;
    }
  }

  // 5. Remove outputs whose source is gone, now skipped or now a duplicate; park their captions.
  for (const old of previous?.entries ?? []) {
    const now = entries.get(old.source);
    if (old.output && (!now || now.output !== old.output)) {
      await rm(join(outDir, old.output), { force: true });
      if (!now) summary.removed.push(old.source);
    }
    if (old.caption && !now) {
      const from = join(outDir, old.caption);
      if (await exists(from)) {
        const parked = join(outDir, ".removed", old.caption);
        await mkdir(dirname(parked), { recursive: true });
        await rename(from, parked);
      }
    }
  }

  const manifest: PrepManifest = {
    version: 1,
    dataset: datasetDir,
    settings,
    updatedAt: new Date().toISOString(),
    entries: probed.map((image) => {
      const entry = entries.get(image.source);
      if (entry) return entry;
      const dup = duplicateOf.get(image.source);
      return {
        source: image.source,
        size: image.size,
        sha256: image.sha256,
        dhash: image.dhash,
        width: image.width,
        height: image.height,
        status: dup ? "duplicate" : "skipped",
        problems: image.problems,
        duplicateOf: dup?.keep,
      } satisfies ManifestEntry;
    }),
  };
  await writePrepManifest({ path: manifestPath, manifest });
  summary.outputs = entries.size;
  summary.processed.sort();
  yield { type: "done", result: { ...summary } };
  return summary;
}

function assignNames(sources: readonly string[], previous: ReadonlyMap<string, ManifestEntry>): Map<string, string> {
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

function progress(task: string, current: number, total: number, started: number, message: string): LoraspecEvent {
  const seconds = (Date.now() - started) / 1000;
  const rate = seconds > 0 ? current / seconds : undefined;
  return { type: "progress", task, current, total, rate, eta: rate ? (total - current) / rate : undefined, message };
}

function sha256(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return undefined;
  }
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new LoraspecError("E_CANCELLED", "prep cancelled; the manifest was not updated, re-run to continue");
}

function stableJson(value: unknown): string {
  return JSON.stringify(value, (_, v) => (v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v));
}

