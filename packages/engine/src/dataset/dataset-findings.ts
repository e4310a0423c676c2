import type { Finding } from "@loraspec/core/lint/finding.js";
import { readsFile, type TrainerFolderReading } from "@loraspec/core/knowledge/trainer-folder-reading.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { describeOrphan } from "./caption-sidecar.js";
import { nameFew } from "./name-few.js";
import { NEAR_DUPLICATE } from "./prep-knowledge.js";
import type { DatasetScan } from "./scan-dataset.js";

const SHOWN = 8;

/** `check`'s findings about what `prep` will do with the folder: what it leaves out and why. */
export function datasetFindings(scan: DatasetScan, field = "dataset.path"): Finding[] {
  const out: Finding[] = [];
  if (scan.skipped.length) {
    const byCode = new Map<string, number>();
    for (const s of scan.skipped) byCode.set(s.code, (byCode.get(s.code) ?? 0) + 1);
    out.push({
      rule: "dataset-skipped",
      severity: "warning",
      field,
      message: `prep will leave out ${scan.skipped.length} file(s): ${scan.skipped.slice(0, SHOWN).map((s) => `${s.file} (${s.code}: ${s.message})`).join("; ")}${scan.skipped.length > SHOWN ? "; ..." : ""}`,
      fix: "Re-export, replace or remove those files (`loraspec prep` lists each with its reason); the rest of the dataset is fine to use.",
      source: "loraspec prep: probe-image.ts (header, decode, size, aspect) and list-dataset-files.ts",
      files: scan.skipped.map((s) => s.file),
    });
  }
  if (scan.duplicates.length) {
    const dropped = scan.duplicates.reduce((n, c) => n + c.drop.length, 0);
    out.push({
      rule: "dataset-duplicates",
      severity: "warning",
      field,
      message: `prep will keep one image per duplicate cluster and leave out ${dropped}: ${scan.duplicates
        .slice(0, SHOWN)
        .map((c) => `${c.kind} copy of ${c.keep}: ${c.drop.join(", ")}`)
        .join("; ")}`,
      fix: "Remove the copies, or choose which one stays with `loraspec prep --pin <file>` (the web page's Dataset tab shows each cluster side by side).",
      source: `prep-knowledge NEAR_DUPLICATE (${NEAR_DUPLICATE.source}, as of ${NEAR_DUPLICATE.asOf})`,
      files: scan.duplicates.flatMap((c) => c.drop),
    });
  }
  if (scan.orphanCaptions.length) {
    out.push({
      rule: "dataset-orphan-captions",
      severity: "warning",
      field,
      message: `${scan.orphanCaptions.length} caption file(s) have no image beside them: ${nameFew(scan.orphanCaptions.map((c) => describeOrphan(c, scan.orphanHints)))}`,
      fix: `Rename the caption to its image's name (same stem, ${Object.keys(scan.orphanHints).length ? "photo.txt for photo.jpg, not photo.jpg.txt: the renames are named above" : "photo.txt for photo.jpg"}), or delete it; a caption trains only with the image of the same name.`,
      source: "kohya-ss/sd-scripts and ai-toolkit pair image.ext with image.txt (reference/trainers.md)",
      files: scan.orphanCaptions,
    });
  }
  const hidden = hiddenFilesFinding(scan.hidden, field);
  if (hidden) out.push(hidden);
  const animated = animatedFinding(scan, field);
  if (animated) out.push(animated);
  if (scan.captionProblems.length) {
    out.push({
      rule: "dataset-caption-unreadable",
      severity: "warning",
      field,
      message: `prep will not copy ${scan.captionProblems.length} caption file(s), so their images train uncaptioned: ${scan.captionProblems
        .slice(0, SHOWN)
        .map((c) => `${c.file} (${c.code}: ${c.message})`)
        .join("; ")}`,
      fix: "Re-save those captions as UTF-8 (any editor's 'Save with encoding'); one too large to be a caption is the wrong file: replace it with the image's caption. Then run check again.",
      source: `caption-sidecar.ts readCaptionFile: captions are UTF-8, as the trainers read them (kohya and the built-in trainer open them as UTF-8), and at most ${FILE_LIMITS.caption.bytes / 1024} KiB (fs/file-limits.ts: ${FILE_LIMITS.caption.source})`,
      files: scan.captionProblems.map((c) => c.file),
    });
  }
  return out;
}

/** Skips of files no trainer is handed either way (the listing never copies or follows them). */
const NOT_HANDED_ON = new Set(["symlink", "unreadable-folder", "not-a-file"]);

/**
 * Skips whose file the trainer cannot decode either (PIL, which the built-in trainer, Kohya and ai-toolkit read
 * images with, fails on an empty, truncated or non-image file as sharp does): handed the dataset as it is, the run
 * stops at the first of them, so check says so as an error, not a warning. `too-large` (over loraspec's pixel limit,
 * knowledge/image-formats.ts MAX_INPUT_PIXELS) stops every trainer whose own limit is known and no higher.
 */
const STOPS_THE_RUN = new Set(["unreadable", "not-an-image", "truncated"]);

/** A trainer's reading of a folder (core knowledge/trainer-folder-reading.ts); tests pass the parts they need. */
export type FolderReader = Pick<TrainerFolderReading, "subfolders" | "extensions"> & Partial<Pick<TrainerFolderReading, "maxPixels" | "source">>;

/** The images of the scan a trainer reading the dataset as it is would read (core knowledge/trainer-folder-reading.ts). */
export function imagesReadBy(scan: Pick<DatasetScan, "images">, reader?: FolderReader): DatasetScan["images"] {
  return reader ? scan.images.filter((i) => readsFile(reader, i.file)) : scan.images;
}

/** The files handed as they are that stop the run: undecodable, or over the trainer's pixel limit. */
export function runStoppers(scan: DatasetScan, reader?: FolderReader): Array<{ file: string; code: string; message: string }> {
  const read = (file: string) => !reader || readsFile(reader, file);
  const limit = reader?.maxPixels;
  const bad = scan.skipped.filter((s) => read(s.file) && (STOPS_THE_RUN.has(s.code) || (s.code === "too-large" && limit !== undefined)));
  const huge =
    limit === undefined
      ? []
      : imagesReadBy(scan, reader)
          .filter((i) => i.width * i.height > limit)
          .map((i) => ({ file: i.file, code: "over-trainer-pixel-limit", message: `${i.width}x${i.height} = ${(i.width * i.height).toLocaleString("en-US")} px is over the trainer's ${limit.toLocaleString("en-US")} px limit` }));
  return [...bad, ...huge];
}

/**
 * Before `loraspec prep` has made the dataset's folder the run trains on the dataset as it is, so the
 * images check counts (prep's) are not what the trainer reads: every file prep would leave out (a
 * truncated download, an empty file, a decompression bomb, a duplicate) goes to the trainer too, and
 * with `reader` (how the contract's trainer reads a folder) images in sub-folders or of a format it does not
 * open are counted but never trained: one warning naming them, with the command that makes the two agree.
 * A file the trainer reads but cannot decode, or one over its pixel limit, stops the run: those are the error
 * `dataset-not-prepared-unreadable`; a trainer that reads none of the images is the error
 * `dataset-not-prepared-unread` (what check passes, train starts).
 */
export function unpreparedFindings(scan: DatasetScan, field = "dataset.path", reader?: FolderReader): Finding[] {
  const fatal = runStoppers(scan, reader);
  const fatalFiles = new Set(fatal.map((s) => s.file));
  const bad = scan.skipped.filter((s) => !NOT_HANDED_ON.has(s.code) && !fatalFiles.has(s.file));
  const copies = scan.duplicates.flatMap((c) => c.drop);
  const readable = new Set(imagesReadBy(scan, reader).map((i) => i.file));
  const unread = scan.images.filter((i) => !readable.has(i.file));
  const out: Finding[] = [];
  if (fatal.length) {
    out.push({
      rule: "dataset-not-prepared-unreadable",
      severity: "error",
      field,
      message: `the run trains on ${scan.path} as it is (not prepared yet), and the trainer cannot open ${fatal.length} file(s) there: ${fatal
        .slice(0, SHOWN)
        .map((s) => `${s.file} (${s.code}: ${s.message})`)
        .join("; ")}${fatal.length > SHOWN ? "; ..." : ""}; the run would stop at the first`,
      fix: "Run `loraspec prep` first (it leaves them out, or scales them down, and the run trains on its folder), or remove or re-export those files.",
      source: `the built-in trainer (worker train/buckets.py: E_IMAGE_UNREADABLE), Kohya and ai-toolkit open every image with PIL, which fails on these as sharp does (probe-image.ts); ${reader?.source ?? "the trainer's reading is not recorded"}`,
      files: fatal.map((s) => s.file),
    });
  }
  if (reader && unread.length && !readable.size) out.push(noneReadFinding(scan, field, reader));
  if (!bad.length && !copies.length && !unread.length) return out;
  const named = [...bad.map((s) => `${s.file} (${s.code})`), ...copies.map((c) => `${c} (duplicate)`)];
  const parts = [
    named.length ? `the trainer also gets the ${named.length} file(s) prep leaves out: ${named.slice(0, SHOWN).join(", ")}${named.length > SHOWN ? ", ..." : ""}` : "",
    unread.length ? `${unread.length} counted image(s) are never read (${readerWords(reader!)}): ${nameFew(unread.map((i) => i.file), SHOWN)}` : "",
  ].filter(Boolean);
  out.push({
    rule: "dataset-not-prepared",
    severity: "warning",
    field,
    message: `the run trains on ${scan.path} as it is (not prepared yet): ${parts.join("; and ")}`,
    fix: "Run `loraspec prep` first: the run then trains on its folder, which holds exactly the images counted here.",
    source: `engine run/build-train-job.ts (a run is handed the prepared folder when prep made one for this dataset, else the dataset; project-dataset.ts trainingDatasetDir); ${reader?.source ?? ""}`,
    files: [...named.map((n) => n.slice(0, n.lastIndexOf(" ("))), ...unread.map((i) => i.file)],
  });
  return out;
}

function readerWords(reader: FolderReader): string {
  return `the trainer reads ${reader.extensions.join(" ")} files${reader.subfolders ? "" : " in the folder itself, not in sub-folders"}`;
}

/** `dataset-not-prepared-unread`: handed the dataset as it is, the trainer finds no image to train on. */
function noneReadFinding(scan: DatasetScan, field: string, reader: FolderReader): Finding {
  const nested = scan.images.some((i) => i.file.includes("/"));
  return {
    rule: "dataset-not-prepared-unread",
    severity: "error",
    field,
    message: `the run trains on ${scan.path} as it is (not prepared yet), and the trainer reads none of its ${scan.images.length} image(s): ${readerWords(reader)}`,
    fix: `Run \`loraspec prep\` first: it reads sub-folders and every format it can decode, and writes one flat folder of PNG (or JPEG) images the run trains on${nested ? "; or move the images out of their sub-folders into the dataset folder itself (a Kohya-style `10_name/` folder's repeat count is not read: the plan derives repeats from hyperparameters.steps)" : ""}.`,
    source: reader.source ?? "the trainer's folder reading (core knowledge/trainer-folder-reading.ts)",
    files: scan.images.map((i) => i.file),
  };
}

/**
 * Animated GIF/WebP (and multi-page TIFF) images: prep and every trainer (PIL's first frame) train on the first
 * frame only, so the finding holds prepared or not.
 */
export function animatedFinding(scan: Pick<DatasetScan, "warnings">, field = "dataset.path"): Finding | undefined {
  const frames = scan.warnings.filter((w) => w.code === "first-frame-only");
  if (!frames.length) return undefined;
  return {
    rule: "dataset-animated",
    severity: "warning",
    field,
    message: `${frames.length} animated or multi-page image(s) train on their first frame only: ${frames
      .slice(0, SHOWN)
      .map((w) => `${w.file} (${w.message})`)
      .join("; ")}${frames.length > SHOWN ? "; ..." : ""}`,
    fix: "Export the frames you want as still images (one PNG per frame worth training on), or keep the file knowing only its first frame trains.",
    source: "probe-image.ts (sharp decodes the first page unless told otherwise, as prep does); PIL's Image.open, which the trainers read with, gives the first frame",
    files: frames.map((w) => w.file),
  };
}

/**
 * The hidden files (names starting with ".") prep and the trainers leave out, as one info finding
 * naming the first few: check's, and the web page's Dataset listing's. Undefined when there are none.
 */
export function hiddenFilesFinding(hidden: readonly string[], field = "dataset.path"): Finding | undefined {
  if (!hidden.length) return undefined;
  return {
    rule: "dataset-hidden-files",
    severity: "info",
    field,
    message: `prep and the trainers leave out ${hidden.length} hidden file(s) (names starting with "."): ${nameFew(hidden)}`,
    fix: 'Nothing to do for system files (macOS "._" copies, .DS_Store); an image meant to train must not start with "." (rename it).',
    source: "list-dataset-files.ts (check and prep) and the built-in trainer (worker train/data.py read_dataset) skip dot-files; Python's glob, which kohya's glob_images uses, does not match them",
    files: [...hidden],
  };
}
