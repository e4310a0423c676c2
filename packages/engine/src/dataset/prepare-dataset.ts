import { BUCKET_DEFAULTS } from "@loraspec/core/knowledge/buckets.js";
import { FLATTEN_BACKGROUND } from "@loraspec/core/knowledge/image-formats.js";
import { mkdir, rm } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { extname, join, resolve } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { aspectBuckets, type Bucket } from "@loraspec/core/plan/buckets.js";
import { trainingShape, type ShapeRule } from "@loraspec/core/plan/trainer-buckets.js";
import type { CropBox, Size } from "./crop-geometry.js";
import { describeOrphan } from "./caption-sidecar.js";
import { dedupeImages, type DuplicateCluster, type NearDuplicateThresholds } from "./dedupe.js";
import type { EmbedOutcome } from "./worker-embedder.js";
import { hiddenFilesNote, listDatasetFiles } from "./list-dataset-files.js";
import { mapPool } from "./map-pool.js";
import { nameFew } from "./name-few.js";
import { MAX_INPUT_PIXELS } from "./prep-knowledge.js";
import { parkCaption, syncCaptions } from "./prep-captions.js";
import { MANIFEST_FILE, readPrepManifest, writePrepManifest, type ManifestEntry, type PrepManifest } from "./prep-manifest.js";
import { datasetRelativeTo, manifestDataset, preparedFrom } from "./prepared-folder.js";
import { decodeProblem, type ProbedImage } from "./probe-image.js";
import { readImageFile } from "./read-image-file.js";
import { assignNames, prepProgress, probeSources, sourceFields } from "./prep-sources.js";
import { processImage } from "./process-image.js";
import { exists } from "../fs/exists.js";

export interface PrepareDatasetParams {
  /** Folder with the user's originals (read only). */
  datasetDir: string;
  /**
   * Folder for prepared images, captions and the manifest: new, or one prep made from this same
   * dataset (one made from another dataset is refused). The CLI's default is the dataset's own
   * under the project's `.loraspec/` (prepared-folder.ts choosePreparedDir).
   */
  outDir: string;
  /** Native training resolution of the base model (1024 for SDXL and FLUX). */
  resolution: number;
  aspect?: "square" | "buckets";
  /**
   * With aspect buckets: the contract's bucket set at `resolution` (core's resolveBuckets, what the
   * trainers get); default core's set for a contract that gives none (aspectBuckets). `shapes` wins.
   */
  buckets?: readonly Bucket[];
  /**
   * With aspect buckets: how the contract's trainer shapes each image (core's shapeRule, what the plan uses):
   * prep crops each image to trainingShape(shapes, resolution, image), so the trainer leaves it as it is.
   * Absent (no contract, or it does not bucket): `buckets`, else core's default set, as a Kohya-style set.
   */
  shapes?: ShapeRule;
  crop?: "center" | "attention";
  format?: "png" | "jpeg";
  /** Colour that transparent pixels are flattened onto. */
  background?: string;
  maxPixels?: number;
  /** Overrides of the near-duplicate thresholds (prep-knowledge NEAR_DUPLICATE). */
  nearDuplicate?: Partial<NearDuplicateThresholds>;
  /**
   * Image embeddings to confirm near-duplicate pairs (embedWithWorker); given absolute paths of
   * the candidates only. Undefined: hash and pixels decide alone.
   */
  embed?: (paths: string[]) => Promise<EmbedOutcome>;
  /** Sources (relative paths) to keep over their duplicates. */
  pinned?: readonly string[];
  /** Pairs never called duplicates of each other (the page's "keep both"; dataset-pins.ts). */
  distinct?: ReadonlyArray<readonly [string, string]>;
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
  /** Caption files with no image of the same name. */
  orphanCaptions: string[];
  /** Orphans named after their image with its extension (`photo.jpg.txt`): caption -> the rename to make (never made). */
  orphanHints: Record<string, string>;
  /** Hidden files and folders (names starting with "."), left out unread: list-dataset-files.ts. */
  hidden: string[];
  captionsCopied: number;
  captionsMissing: number;
  /** Captions set aside (into .removed/) because their image's bytes changed since they were written. */
  staleCaptions: Array<{ source: string; parked: string }>;
}

/**
 * The set a contract with `aspect: buckets` and no dataset.buckets trains in (core's aspectBuckets).
 * Prep without a contract's set has no contract field to blame, so a resolution below the default
 * shortest bucket side is a usage error naming the resolution.
 */
function defaultBuckets(resolution: number): Bucket[] {
  if (resolution < BUCKET_DEFAULTS.minSide) {
    throw new LoraspecError("E_USAGE", `aspect buckets need a resolution of at least ${BUCKET_DEFAULTS.minSide} px (the default shortest bucket side); got ${resolution}`, {
      hint: `use --aspect square, raise --resolution, or give the contract a dataset.buckets.min_side at or below ${resolution}`,
    });
  }
  return aspectBuckets(undefined, resolution).buckets;
}

/**
 * The rule prep shapes images by at params.resolution: the contract's (params.shapes, core's shapeRule), else
 * the given set, else core's default set; a set is cut to the resolution prep crops at (the largest: the
 * trainer re-buckets smaller ones itself), which must have a bucket.
 */
function prepRule(params: PrepareDatasetParams): ShapeRule {
  const rule: ShapeRule = params.shapes ?? { picker: "set", buckets: params.buckets?.length ? [...params.buckets] : defaultBuckets(params.resolution) };
  if (rule.picker !== "set") return rule;
  // A set given with no resolution of its own (older callers) is taken as this resolution's.
  const buckets = rule.buckets.some((b) => b.resolution === params.resolution) ? rule.buckets.filter((b) => b.resolution === params.resolution) : rule.buckets.map((b) => ({ ...b, resolution: params.resolution }));
  return { picker: "set", buckets };
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
  // Core decides each image's shape (plan/trainer-buckets.ts trainingShape, what the plan uses): prep crops to the shape the trainer picks.
  const rule = (params.aspect ?? "square") === "buckets" ? prepRule(params) : undefined;
  const settings = {
    resolution: params.resolution,
    aspect: params.aspect ?? "square",
    crop: params.crop ?? "center",
    format: params.format ?? "png",
    background: params.background ?? FLATTEN_BACKGROUND.value,
    maxPixels: params.maxPixels ?? MAX_INPUT_PIXELS.value,
    // The set (or ai-toolkit's picker and divisibility), so outputs are remade when it changes (a manifest written with no set given listed none: its outputs are remade once).
    ...(rule?.picker === "set" ? { buckets: rule.buckets.map((b) => `${b.width}x${b.height}`) } : {}),
    ...(rule?.picker === "ai-toolkit" ? { shapes: `ai-toolkit, divisibility ${rule.divisibility}` } : {}),
  };
  const concurrency = params.concurrency ?? Math.max(1, availableParallelism());
  const signal = params.signal;
  const manifestPath = join(outDir, MANIFEST_FILE);
  // A prepared folder belongs to one dataset: its names, captions and outputs are never reused for another's images.
  const previous = await readPrepManifest({ path: manifestPath });
  if (previous && !preparedFrom(previous, outDir, datasetDir)) {
    throw new LoraspecError("E_USAGE", `${outDir} holds images prepared from another dataset (${manifestDataset(previous, outDir) ?? previous.dataset}), not from ${params.datasetDir}`, {
      file: outDir,
      hint: "leave --out out (prep then uses this dataset's own folder under .loraspec/), pass another --out, or delete that folder first",
    });
  }

  yield { type: "phase", name: "scan", message: datasetDir };
  const files = await listDatasetFiles({ dir: datasetDir, captionExtension: captionExt, exclude: [outDir], displayPath: params.datasetDir });
  for (const s of files.skipped) yield { type: "warning", code: s.code, message: `${s.path}: ${s.message} (skipped)`, file: s.path };
  if (files.hidden.length) {
    yield { type: "warning", code: "hidden-file", message: `left out ${files.hidden.length} hidden file(s) (names starting with "."; no trainer reads them): ${nameFew(files.hidden)}` };
  }
  if (files.orphanCaptions.length) {
    const named = files.orphanCaptions.map((c) => describeOrphan(c, files.orphanHints));
    yield { type: "warning", code: "orphan-caption", message: `${files.orphanCaptions.length} caption file(s) with no image beside them: ${named.join(", ")}` };
  }
  if (files.images.length === 0) {
    throw new LoraspecError("E_DATASET_EMPTY", `no images in ${datasetDir}`, {
      file: datasetDir,
      hint: `put JPEG, PNG, WebP, AVIF, TIFF or GIF files there${files.other.length ? ` (found ${files.other.length} other files)` : ""}.${hiddenFilesNote(files.hidden)}`,
    });
  }
  const sameSettings = previous !== undefined && stableJson(previous.settings) === stableJson(settings);
  const previousBySource = new Map((previous?.entries ?? []).map((e) => [e.source, e]));

  // 1. Read every candidate's header and content hash (no pixels decoded here).
  const probed = yield* probeSources({
    sources: files.images,
    datasetDir,
    previous: previousBySource,
    reuse: sameSettings,
    resolution: params.resolution,
    shapes: rule,
    maxPixels: settings.maxPixels,
    concurrency,
    signal,
  });
  throwIfAborted(signal);
  probed.sort((a, b) => (a.source < b.source ? -1 : 1));

  // Problems found from headers alone.
  const summary: PrepSummary = {
    datasetDir,
    outDir,
    manifest: manifestPath,
    candidates: files.images.length,
    outputs: 0,
    processed: [],
    unchanged: 0,
    removed: [],
    skipped: files.skipped.map((s) => ({ source: s.path, code: s.code, message: s.message })),
    warnings: [],
    duplicates: [],
    otherFiles: files.other,
    orphanCaptions: files.orphanCaptions,
    orphanHints: files.orphanHints,
    hidden: files.hidden,
    captionsCopied: 0,
    captionsMissing: 0,
    staleCaptions: [],
  };
  for (const image of probed) {
    const skip = image.problems.filter((p) => p.severity === "skip");
    if (skip.length) {
      // A skipped image is listed once, under Skipped, with every reason (never also as "used, with warnings").
      const message = skip.map((p) => p.message).join("; ");
      summary.skipped.push({ source: image.source, code: skip[0]!.code, message });
      yield { type: "warning", code: skip[0]!.code, message: `${image.source}: ${message} (skipped)`, file: image.source };
      continue;
    }
    for (const problem of image.problems) {
      summary.warnings.push({ source: image.source, code: problem.code, message: problem.message });
      yield { type: "warning", code: problem.code, message: `${image.source}: ${problem.message}`, file: image.source };
    }
  }
  const usable = probed.filter((p) => !p.problems.some((x) => x.severity === "skip"));

  // 2. Exact copies (same bytes) are dropped before anything is decoded.
  const exactClusters = dedupeImages({ images: usable, near: false, pinned: params.pinned, distinct: params.distinct });
  const duplicateOf = new Map<string, { keep: string; kind: "exact" | "near" }>();
  for (const cluster of exactClusters) for (const drop of cluster.drop) duplicateOf.set(drop, { keep: cluster.keep, kind: "exact" });
  const unique = usable.filter((u) => !duplicateOf.has(u.source));

  // Names: a source keeps its name for life, so its caption stays with it.
  const names = assignNames(unique.map((k) => k.source), previousBySource);
  const outputExt = settings.format === "png" ? ".png" : ".jpg";
  await mkdir(outDir, { recursive: true });
  const entries = new Map<string, ManifestEntry>();
  const targets = new Map<string, Size>();
  const upToDate = new Set<string>();
  for (const image of unique) {
    const name = names.get(image.source)!;
    const bucket = rule ? trainingShape(rule, settings.resolution, image) : undefined;
    const target: Size = bucket ? { width: bucket.width, height: bucket.height } : { width: settings.resolution, height: settings.resolution };
    const old = previousBySource.get(image.source);
    const entry: ManifestEntry = {
      ...sourceFields(image),
      status: "prepared",
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
    targets.set(image.source, target);
    const sameOutput = old?.output === entry.output && old?.outputWidth === target.width && old?.outputHeight === target.height;
    if (sameSettings && old?.status === "prepared" && old.sha256 === image.sha256 && sameOutput && image.signature && (await exists(join(outDir, entry.output!)))) {
      upToDate.add(image.source);
    }
  }

  // 3. Decode what is new or changed: one decode gives the output and the dedupe signature.
  const processed = new Set<string>();
  const failed = new Set<string>();
  let prepDone = 0;
  let prepTotal = 0;
  const prepStarted = Date.now();
  async function* processAll(sources: string[]): AsyncGenerator<LoraspecEvent> {
    prepTotal += sources.length;
    for await (const result of mapPool(
      sources,
      concurrency,
      async (source) => {
        const entry = entries.get(source)!;
        const image = unique.find((u) => u.source === source)!;
        let bytes: Buffer | undefined;
        try {
          // Bounded like the probe (a file that grew since is image-too-large, unread).
          const got = await readImageFile(join(datasetDir, source));
          if (!("bytes" in got)) return { source, problem: got.problem };
          bytes = got.bytes;
          const out = await processImage({
            bytes,
            source: image,
            settings: { target: targets.get(source)!, crop: settings.crop, format: settings.format, background: settings.background, maxPixels: settings.maxPixels },
          });
          await atomicWrite(join(outDir, entry.output!), out.data);
          entry.crop = out.crop as CropBox;
          entry.signature = out.signature;
          image.signature = out.signature;
          return { source, problem: undefined };
        } catch (error) {
          // Decoding can fail where the header read fine (truncated files): report, never stop.
          return { source, problem: decodeProblem(bytes ?? new Uint8Array(), image.format, error) };
        }
      },
      signal,
    )) {
      prepDone++;
      if (result.problem) {
        failed.add(result.source);
        entries.delete(result.source);
        const image = unique.find((u) => u.source === result.source)!;
        image.problems.push(result.problem);
        // Listed once, under skipped: the header's warnings (upscaled) no longer apply to an image left out.
        summary.warnings = summary.warnings.filter((w) => w.source !== result.source);
        summary.skipped.push({ source: result.source, code: result.problem.code, message: result.problem.message });
        yield { type: "warning", code: result.problem.code, message: `${result.source}: ${result.problem.message} (skipped)`, file: result.source };
      } else processed.add(result.source);
      yield prepProgress("prep", prepDone, prepTotal, prepStarted, result.source);
    }
  }
  const changed = unique.filter((u) => !upToDate.has(u.source) && !u.signature).map((u) => u.source);
  yield { type: "phase", name: "prep", message: `${changed.length} to decode, ${upToDate.size} unchanged -> ${outDir}` };
  yield* processAll(changed);
  throwIfAborted(signal);

  // 4. Near duplicates, pair by pair against the image kept (exact copies ride along by sha256).
  const hashed = unique.filter((u) => !failed.has(u.source) && u.signature);
  yield { type: "phase", name: "dedupe", message: `${hashed.length} images` };
  const exactCopies = usable.filter((u) => duplicateOf.has(u.source) && !failed.has(duplicateOf.get(u.source)!.keep));
  const dedupeInput = { images: [...hashed, ...exactCopies], pinned: params.pinned, distinct: params.distinct, thresholds: params.nearDuplicate };
  summary.duplicates = dedupeImages(dedupeInput);
  const candidates = summary.duplicates.filter((c) => c.kind === "near").flatMap((c) => [c.keep, ...c.drop.filter((d) => c.evidence[d])]);
  if (params.embed && candidates.length) {
    // Only images in a hash-and-pixel near pair are embedded: usually few, so the model's cost stays small.
    const outcome = await params.embed(candidates.map((c) => join(datasetDir, c)));
    if (outcome.embeddings) {
      const bySource = new Map(candidates.map((c) => [c, outcome.embeddings.get(join(datasetDir, c))!] as const));
      summary.duplicates = dedupeImages({ ...dedupeInput, embeddings: bySource });
    } else {
      yield { type: "warning", code: "dedupe-unconfirmed", message: `near duplicates decided by hash and pixels only (no image embeddings: ${outcome.reason})` };
    }
  }
  for (const cluster of summary.duplicates) {
    for (const drop of cluster.drop) duplicateOf.set(drop, { keep: cluster.keep, kind: cluster.evidence[drop] ? "near" : "exact" });
  }
  for (const cluster of summary.duplicates) {
    yield {
      type: "warning",
      code: cluster.kind === "exact" ? "duplicate" : "near-duplicate",
      message: `${cluster.kind === "exact" ? "exact" : "near"} duplicates: keeping ${cluster.keep}, leaving out ${cluster.drop.join(", ")} (choose with --pin or on the web page's Dataset tab)`,
      file: cluster.keep,
    };
  }
  for (const [drop, { keep, kind }] of [...duplicateOf.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
    summary.skipped.push({ source: drop, code: kind === "exact" ? "duplicate" : "near-duplicate", message: `${kind === "exact" ? "exact copy" : "near duplicate"} of ${keep}` });
    const entry = entries.get(drop);
    // A near duplicate decoded in this run leaves no output behind.
    if (entry && processed.has(drop)) await rm(join(outDir, entry.output!), { force: true });
    entries.delete(drop);
    processed.delete(drop);
  }

  // 5. A kept image whose output is missing (it was someone's duplicate before) is made now.
  const late = [...entries.keys()].filter((s) => !upToDate.has(s) && !processed.has(s));
  if (late.length) yield* processAll(late);
  throwIfAborted(signal);
  summary.processed = [...processed].filter((s) => entries.has(s));
  summary.unchanged = [...upToDate].filter((s) => entries.has(s)).length;

  // 6. Captions of sources no longer prepared (gone, now skipped or a duplicate) are parked first: a new source may take their name.
  for (const old of previous?.entries ?? []) {
    if (old.caption && !entries.has(old.source) && (await exists(join(outDir, old.caption)))) await parkCaption(outDir, old.caption);
  }

  // 7. Captions follow their image (prep-captions.ts): sidecars copied in, hand edits kept, a caption of changed pixels parked.
  const captions = yield* syncCaptions({ outDir, datasetDir, entries: entries.values(), sidecars: files.sidecars, previous: previousBySource });
  summary.captionsCopied = captions.copied;
  summary.captionsMissing = captions.missing;
  summary.staleCaptions = captions.stale;

  // 8. Remove outputs whose source is gone, now skipped or now a duplicate (never a file a kept source now writes: a.jpg -> a.png).
  const outputsNow = new Set([...entries.values()].map((e) => e.output!.toLowerCase()));
  for (const old of previous?.entries ?? []) {
    const now = entries.get(old.source);
    if (old.output && (!now || now.output !== old.output) && !outputsNow.has(old.output.toLowerCase())) await rm(join(outDir, old.output), { force: true });
    if (old.output && !now) summary.removed.push(old.source);
  }

  const manifest: PrepManifest = {
    version: 1,
    dataset: datasetDir,
    datasetRelative: datasetRelativeTo(outDir, datasetDir),
    settings,
    updatedAt: new Date().toISOString(),
    entries: probed.map((image) => {
      const entry = entries.get(image.source);
      if (entry) return entry;
      const dup = duplicateOf.get(image.source);
      return {
        ...sourceFields(image),
        status: dup ? "duplicate" : "skipped",
        duplicateOf: dup?.keep,
      } satisfies ManifestEntry;
    }),
  };
  await writePrepManifest({ path: manifestPath, manifest });
  summary.outputs = entries.size;
  if (entries.size === 0) {
    const reasons = [...new Set(summary.skipped.map((s) => s.code))].join(", ");
    throw new LoraspecError("E_DATASET_EMPTY", `no image in ${params.datasetDir} can be used: all ${summary.skipped.length} were skipped (${reasons})`, {
      file: params.datasetDir,
      hint: "fix or replace the files listed above (each with its reason), then run prep again",
      details: { skipped: summary.skipped },
    });
  }
  summary.processed.sort();
  yield { type: "done", result: { ...summary } };
  return summary;
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new LoraspecError("E_CANCELLED", "prep cancelled; the manifest was not updated, re-run to continue");
}

function stableJson(value: unknown): string {
  return JSON.stringify(value, (_, v) => (v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v));
}
