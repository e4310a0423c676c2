import { extname, join } from "node:path";
import type { DatasetImage, DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import { readCaptionFile } from "./caption-sidecar.js";
import { dedupeImages, type DuplicateCluster } from "./dedupe.js";
import { listDatasetFiles, type ListDatasetFilesParams, type SkippedEntry } from "./list-dataset-files.js";
import { mapPool } from "./map-pool.js";
import { captionFingerprints } from "./prep-inputs.js";
import { MAX_INPUT_PIXELS } from "./prep-knowledge.js";
import type { ShapeRule } from "@loraspec/core/plan/trainer-buckets.js";
import { probeImage, type ProbedImage } from "./probe-image.js";
import { imageReadProblem, readImageFile, type ImageRead } from "./read-image-file.js";

/** Extensions the scan treats as images: the same list prep uses (one home: core knowledge/image-formats.ts). */
export { DECODABLE_IMAGE_EXTENSIONS as IMAGE_EXTENSIONS } from "@loraspec/core/knowledge/image-formats.js";

export interface ScanDatasetParams {
  /** Absolute dataset folder. */
  dir: string;
  /** The folder as the contract names it (messages). */
  displayPath?: string;
  /** Caption sidecar extension, with the dot. */
  captionExtension?: string;
  /** The contract file, named in errors. */
  contractFile?: string;
  /** Files read at once. */
  concurrency?: number;
  /** The contract field that names the folder (errors point at it). */
  field?: string;
  /** Training resolution: images far below it are skipped, as prep skips them. Without it, no size check. */
  resolution?: number;
  /** With aspect buckets: the rule prep shapes images by (engine prep-shapes.ts), so "upscaled" is said as prep would; undefined: square. */
  shapes?: ShapeRule;
  maxPixels?: number;
  /** false: headers only (fast; no decode, no duplicate search). */
  decode?: boolean;
  pinned?: readonly string[];
  /** Pairs never called duplicates of each other (dataset-pins.ts). */
  distinct?: ReadonlyArray<readonly [string, string]>;
  /** Injectable for fault tests (permission errors, which root never sees). */
  readFile?: (path: string) => Promise<Buffer>;
  readdir?: ListDatasetFilesParams["readdir"];
}

/** What prep would do with the folder, without writing anything. */
export interface DatasetScan extends DatasetSummary {
  /** Files with an image extension (what `prep` calls candidates). */
  candidates: number;
  /** Everything prep would leave out, with its reason: bad files, folders it cannot read, symlinks. */
  skipped: Array<{ file: string; code: string; message: string }>;
  /** Images prep uses, with a warning (upscaled). */
  warnings: Array<{ file: string; code: string; message: string }>;
  /** The clusters prep would form (the same dedupeImages); `images` holds only their keepers. */
  duplicates: DuplicateCluster[];
  /** Caption sidecars with no image beside them. */
  orphanCaptions: string[];
  /** Orphans named after their image with its extension (`photo.jpg.txt`): caption -> the rename to make. */
  orphanHints: Record<string, string>;
  /** Hidden files and folders (names starting with "."), never read: list-dataset-files.ts. */
  hidden: string[];
  /** Every image file read (kept, skipped or a duplicate) with its size and sha256 ("" when unread): what a prepared folder's manifest is compared with (prepared-stale.ts). */
  sources: Array<{ file: string; size: number; sha256: string }>;
  /** Every caption sidecar paired with an image, fingerprinted as prep fingerprints it (prep-inputs.ts): what a manifest's caption inputs are compared with. */
  captionFiles: Array<{ file: string; sha256: string }>;
  /** Sidecars prep will not copy (not UTF-8, or over the caption size limit): their image counts as uncaptioned. `file` is the caption. */
  captionProblems: Array<{ file: string; code: string; message: string }>;
}

/**
 * The dataset as `prep` will see it, for `check` and the web page: the same file listing, the same
 * probe of each image (header, and unless `decode` is false a thumbnail decode and its dedupe
 * signature) and the same duplicate clusters. `images` holds what will train. Bad files become
 * `skipped` rows, never a throw, so one bad file hides nothing else.
 */
export async function scanDataset(params: ScanDatasetParams): Promise<DatasetScan> {
  const { dir, displayPath = dir, captionExtension = ".txt", concurrency = 4, field = "dataset.path" } = params;
  const files = await listDatasetFiles({ dir, captionExtension, displayPath, contractFile: params.contractFile, field, readdir: params.readdir });
  // Bounded as prep reads them (read-image-file.ts): a file over FILE_LIMITS.image is image-too-large, unread.
  const injected = params.readFile;
  const read = injected ? (path: string): Promise<ImageRead> => injected(path).then((bytes) => ({ bytes }), (error: unknown) => ({ size: 0, problem: imageReadProblem(error) })) : readImageFile;
  const probed: ProbedImage[] = [];
  for await (const p of mapPool(files.images, concurrency, async (source) => {
    const got = await read(join(dir, source));
    if (!("bytes" in got)) return { source, size: got.size, sha256: "", width: 0, height: 0, problems: [got.problem] } satisfies ProbedImage;
    return probeImage({ source, bytes: got.bytes, resolution: params.resolution ?? 0, shapes: params.shapes, maxPixels: params.maxPixels ?? MAX_INPUT_PIXELS.value, hash: params.decode !== false });
  }))
    probed.push(p);
  probed.sort((a, b) => (a.source < b.source ? -1 : 1));
  const skipped: DatasetScan["skipped"] = files.skipped.map((s: SkippedEntry) => ({ file: s.path, code: s.code, message: s.message }));
  const warnings: DatasetScan["warnings"] = [];
  const unreadable: DatasetSummary["unreadable"] = [];
  const usable: ProbedImage[] = [];
  for (const p of probed) {
    const skip = p.problems.filter((x) => x.severity === "skip");
    // A skipped image is listed once, with all its reasons; only used images carry warnings.
    if (skip.length) {
      skipped.push({ file: p.source, code: skip[0]!.code, message: skip.map((x) => x.message).join("; ") });
      if (["unreadable", "not-an-image", "truncated"].includes(skip[0]!.code)) unreadable.push({ file: p.source, reason: skip[0]!.message });
    } else {
      usable.push(p);
      for (const w of p.problems) warnings.push({ file: p.source, code: w.code, message: w.message });
    }
  }
  const duplicates = params.decode === false ? [] : dedupeImages({ images: usable, pinned: params.pinned, distinct: params.distinct });
  const dropped = new Set(duplicates.flatMap((c) => c.drop));
  // As in prep's summary, each file once: a duplicate left out carries no "used, with a warning" row.
  const used = warnings.filter((w) => !dropped.has(w.file));
  const images: DatasetImage[] = [];
  const captionProblems: DatasetScan["captionProblems"] = [];
  for (const p of usable) {
    if (dropped.has(p.source)) continue;
    const sidecar = files.sidecars.get(p.source);
    let caption: string | null = null;
    if (sidecar !== undefined) {
      // The same reading prep's caption copy does (caption-sidecar.ts): bounded, BOM dropped, non-UTF-8 left out.
      const text = (await readCaptionFile(join(dir, sidecar))) ?? { text: "" };
      if (text.problem) captionProblems.push({ file: sidecar, ...text.problem });
      else caption = text.text.trim();
    }
    images.push({ file: p.source, width: p.width, height: p.height, format: p.format ?? extname(p.source).slice(1).toLowerCase(), caption });
  }
  const sources = probed.map((p) => ({ file: p.source, size: p.size, sha256: p.sha256 }));
  const captionFiles = await captionFingerprints({ dir, sidecars: files.sidecars, concurrency });
  return { path: displayPath, images, unreadable, candidates: files.images.length, sources, captionFiles, skipped, warnings: used, duplicates, orphanCaptions: files.orphanCaptions, orphanHints: files.orphanHints, captionProblems, hidden: files.hidden };
}
