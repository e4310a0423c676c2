import { BUCKET_DEFAULTS } from "@loraspec/core/knowledge/buckets.js";
import { FLATTEN_BACKGROUND } from "@loraspec/core/knowledge/image-formats.js";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { aspectBuckets, type Bucket } from "@loraspec/core/plan/buckets.js";
import type { ShapeRule } from "@loraspec/core/plan/trainer-buckets.js";
import { describeOrphan } from "./caption-sidecar.js";
import type { DuplicateCluster, NearDuplicateThresholds } from "./dedupe.js";
import type { EmbedOutcome } from "./worker-embedder.js";
import { hiddenFilesNote, listDatasetFiles, type DatasetFiles } from "./list-dataset-files.js";
import { nameFew } from "./name-few.js";
import { MAX_INPUT_PIXELS } from "./prep-knowledge.js";
import { commitRun, discardStaging, openStaging, type Staging } from "./prep-commit.js";
import { createDecoder, planOutputs } from "./prep-decode.js";
import { dropExactCopies, settleDuplicates } from "./prep-duplicates.js";
import { MANIFEST_FILE, readPrepManifest, type PrepManifest } from "./prep-manifest.js";
import { checkOutDir, checkPrepSettings } from "./prep-params.js";
import { manifestDataset, preparedFrom } from "./prepared-folder.js";
import type { ProbedImage } from "./probe-image.js";
import { probeSources } from "./prep-sources.js";
import { captionFingerprints, prepInputs } from "./prep-inputs.js";
import { pinsAfterRecord } from "./prep-pins.js";

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
  /** Sources kept over their duplicates even when those are pinned too (the CLI's --pin over the stored choices). */
  preferred?: readonly string[];
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
function prepRule(params: Pick<PrepareDatasetParams, "resolution" | "buckets" | "shapes">): ShapeRule {
  const rule: ShapeRule = params.shapes ?? { picker: "set", buckets: params.buckets?.length ? [...params.buckets] : defaultBuckets(params.resolution) };
  if (rule.picker !== "set") return rule;
  // A set given with no resolution of its own (older callers) is taken as this resolution's.
  const buckets = rule.buckets.some((b) => b.resolution === params.resolution) ? rule.buckets.filter((b) => b.resolution === params.resolution) : rule.buckets.map((b) => ({ ...b, resolution: params.resolution }));
  return { picker: "set", buckets };
}

type PrepSettings = ReturnType<typeof prepSettings>;

/**
 * prep's settings for these parameters, as a run computes them (openRun): what check compares a prepared folder's
 * manifest with, given the contract's resolution, aspect, crop and shape rule (prep-inputs.ts CONTRACT_SETTINGS).
 * Throws what a run would (a resolution below the default buckets' shortest side).
 */
export function prepSettingsFor(params: Pick<PrepareDatasetParams, "resolution" | "aspect" | "buckets" | "shapes" | "crop" | "format" | "background" | "maxPixels">): PrepSettings {
  return prepSettings(params, shapeRuleOf(params));
}

/** The rule images are shaped by; undefined: square. */
function shapeRuleOf(params: Pick<PrepareDatasetParams, "resolution" | "aspect" | "buckets" | "shapes">): ShapeRule | undefined {
  // Core decides each image's shape (plan/trainer-buckets.ts trainingShape, what the plan uses): prep crops to the shape the trainer picks.
  return (params.aspect ?? "square") === "buckets" ? prepRule(params) : undefined;
}

/** Everything that changes the pixels of an output (the manifest's `settings`: a change remakes every output). */
function prepSettings(params: Pick<PrepareDatasetParams, "resolution" | "aspect" | "crop" | "format" | "background" | "maxPixels">, rule: ShapeRule | undefined) {
  return {
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
}

/** What one prep run works with, fixed before anything is scanned. */
export interface PrepRun {
  datasetDir: string;
  outDir: string;
  manifestPath: string;
  captionExt: string;
  /** The rule images are shaped by; undefined: square. */
  rule: ShapeRule | undefined;
  settings: PrepSettings;
  concurrency: number;
  signal: AbortSignal | undefined;
  /** The prepared folder's manifest from an earlier run, if any (one made from this same dataset). */
  previous: PrepManifest | undefined;
}

/** The run's folders, settings and previous manifest; refuses a prepared folder that is the dataset or another dataset's. */
async function openRun(params: PrepareDatasetParams): Promise<PrepRun> {
  const datasetDir = resolve(params.datasetDir);
  const outDir = resolve(params.outDir);
  if (outDir === datasetDir) {
    throw new LoraspecError("E_USAGE", "the prepared folder must not be the dataset folder (originals are never overwritten)", { hint: "pass a different --out" });
  }
  // A setting every image would fail on is E_USAGE before anything is read (prep-params.ts).
  checkPrepSettings(params);
  await checkOutDir(outDir);
  const captionExt = params.captionExtension ?? ".txt";
  const rule = shapeRuleOf(params);
  const settings = prepSettings(params, rule);
  const concurrency = params.concurrency ?? Math.max(1, availableParallelism());
  const manifestPath = join(outDir, MANIFEST_FILE);
  // A prepared folder belongs to one dataset: its names, captions and outputs are never reused for another's images.
  const previous = await readPrepManifest({ path: manifestPath });
  if (previous && !preparedFrom(previous, outDir, datasetDir)) {
    throw new LoraspecError("E_USAGE", `${outDir} holds images prepared from another dataset (${manifestDataset(previous, outDir) ?? previous.dataset}), not from ${params.datasetDir}`, {
      file: outDir,
      hint: "leave --out out (prep then uses this dataset's own folder under .loraspec/), pass another --out, or delete that folder first",
    });
  }
  return { datasetDir, outDir, manifestPath, captionExt, rule, settings, concurrency, signal: params.signal, previous };
}

/** The scan phase: the dataset's files, a warning for each one left out; no image at all is E_DATASET_EMPTY. */
async function* scanSources(run: PrepRun, displayDir: string): AsyncGenerator<LoraspecEvent, DatasetFiles> {
  const { datasetDir } = run;
  yield { type: "phase", name: "scan", message: datasetDir };
  const files = await listDatasetFiles({ dir: datasetDir, captionExtension: run.captionExt, exclude: [run.outDir], displayPath: displayDir });
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
  return files;
}

/** The summary before any image is prepared: what the scan found, the files it skipped. */
function startSummary(run: PrepRun, files: DatasetFiles): PrepSummary {
  return {
    datasetDir: run.datasetDir,
    outDir: run.outDir,
    manifest: run.manifestPath,
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
}

/** Problems found from headers alone, each a warning and a summary row; returns the images not skipped. */
function* reportHeaderProblems(probed: readonly ProbedImage[], summary: PrepSummary): Generator<LoraspecEvent, ProbedImage[]> {
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
  return probed.filter((p) => !p.problems.some((x) => x.severity === "skip"));
}

/**
 * `loraspec prep`: scan, validate, dedupe, crop and resize a dataset into a new folder, with a
 * manifest that makes re-runs incremental. One bad file never stops the others: each becomes a
 * `warning` event and a `skipped` row. The originals are only ever read. The prepared folder changes
 * only when the run succeeds (prep-commit.ts): a run that ends in an error leaves it as it was.
 */
export async function* prepareDataset(params: PrepareDatasetParams): AsyncGenerator<LoraspecEvent, PrepSummary> {
  const run = await openRun(params);
  const files = yield* scanSources(run, params.datasetDir);
  const staging = await openStaging(run.outDir);
  let committed = false;
  try {
    const summary = yield* prepareInStaging(params, run, files, staging);
    committed = true;
    return summary;
  } finally {
    // An error, a cancel or a consumer that stopped early: nothing of this run stays.
    if (!committed) await discardStaging(run.outDir, staging);
  }
}

/** Steps 1 to 9: everything decided and decoded into `staging`, then committed only if something is left to train on. */
async function* prepareInStaging(params: PrepareDatasetParams, run: PrepRun, files: DatasetFiles, staging: Staging): AsyncGenerator<LoraspecEvent, PrepSummary> {
  const { datasetDir, outDir, settings, concurrency, signal, previous } = run;
  const sameSettings = previous !== undefined && stableJson(previous.settings) === stableJson(settings);
  const previousBySource = new Map((previous?.entries ?? []).map((e) => [e.source, e]));
  // The sidecars as this run found them, before any is copied: one changed from here on makes the folder stale (prep-inputs.ts).
  const captions = await captionFingerprints({ dir: datasetDir, sidecars: files.sidecars, concurrency });

  // 1. Read every candidate's header and content hash (no pixels decoded here).
  const probed = yield* probeSources({
    sources: files.images,
    datasetDir,
    previous: previousBySource,
    reuse: sameSettings,
    resolution: params.resolution,
    shapes: run.rule,
    maxPixels: settings.maxPixels,
    concurrency,
    signal,
  });
  throwIfAborted(signal);
  probed.sort((a, b) => (a.source < b.source ? -1 : 1));
  const summary = startSummary(run, files);
  const usable = yield* reportHeaderProblems(probed, summary);

  // 2. Exact copies (same bytes) are dropped before anything is decoded; the rest get their names and output sizes.
  const { duplicateOf, unique } = dropExactCopies(usable, params);
  const plan = await planOutputs({ images: unique, previous: previousBySource, sameSettings, outDir, resolution: settings.resolution, rule: run.rule, format: settings.format, captionExt: run.captionExt });
  const { entries, upToDate } = plan;

  // 3. Decode what is new or changed into staging: one decode gives the output and the dedupe signature.
  const decoder = createDecoder({ datasetDir, writeDir: staging.dir, settings, plan, images: unique, summary, concurrency, signal });
  const changed = unique.filter((u) => !upToDate.has(u.source) && !u.signature).map((u) => u.source);
  yield { type: "phase", name: "prep", message: `${changed.length} to decode, ${upToDate.size} unchanged -> ${outDir}` };
  yield* decoder.decode(changed);
  throwIfAborted(signal);

  // 4. Near duplicates, pair by pair against the image kept (exact copies ride along by sha256).
  const { processed, failed } = decoder;
  yield* settleDuplicates({ datasetDir, writeDir: staging.dir, choices: params, usable, unique, failed, duplicateOf, entries, processed, summary });

  // 5. A kept image whose output is missing (it was someone's duplicate before) is made now.
  const late = [...entries.keys()].filter((s) => !upToDate.has(s) && !processed.has(s));
  if (late.length) yield* decoder.decode(late);
  throwIfAborted(signal);
  summary.processed = [...processed].filter((s) => entries.has(s)).sort();
  summary.unchanged = [...upToDate].filter((s) => entries.has(s)).length;
  // Each file is listed once: one left out (skipped, a duplicate) carries no "used, with warnings" row.
  const left = new Set(summary.skipped.map((s) => s.source));
  summary.warnings = summary.warnings.filter((w) => !left.has(w.source));
  summary.outputs = entries.size;
  if (entries.size === 0) throw datasetEmpty(params.datasetDir, summary);

  // Everything this run read, recorded so check can tell when any of it changed (prep-inputs.ts, prepared-stale.ts);
  // the pins as they are stored once the CLI has recorded --pin (prep-pins.ts recordPins).
  const pins = pinsAfterRecord({ keep: [...(params.pinned ?? [])], distinct: (params.distinct ?? []).map(([a, b]) => [a, b] as [string, string]) }, params.preferred ?? [], summary.duplicates);
  const inputs = prepInputs({ images: probed.map((p) => ({ file: p.source, size: p.size, sha256: p.sha256 })), captions, pins, settings });

  // 6-9. Outputs moved in, captions follow their image, old outputs removed, the manifest written.
  yield* commitRun({ run, staging, files, previousBySource, entries, processed, probed, duplicateOf, summary, inputs });
  yield { type: "done", result: { ...summary } };
  return summary;
}

/** Nothing left to train on: the run ends before the prepared folder is touched. */
function datasetEmpty(datasetDir: string, summary: PrepSummary): LoraspecError {
  const reasons = [...new Set(summary.skipped.map((s) => s.code))].join(", ");
  return new LoraspecError("E_DATASET_EMPTY", `no image in ${datasetDir} can be used: all ${summary.skipped.length} were skipped (${reasons}); the prepared folder was left as it was`, {
    file: datasetDir,
    hint: "fix or replace the files listed above (each with its reason), then run prep again",
    details: { skipped: summary.skipped },
  });
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new LoraspecError("E_CANCELLED", "prep cancelled; the prepared folder was left as it was, re-run to continue");
}

function stableJson(value: unknown): string {
  return JSON.stringify(value, (_, v) => (v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v));
}
