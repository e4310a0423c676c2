import { createWriteStream } from "node:fs";
import { mkdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, extname, posix } from "node:path";
import { pipeline } from "node:stream/promises";
import { join } from "node:path";
import yazl from "yazl";
import { LoraspecError } from "@loraspec/core/errors.js";
import { listDatasetFiles } from "./list-dataset-files.js";

export interface PackZipParams {
  /** Folder of images with same-stem caption sidecars (usually .loraspec/prepared). */
  dir: string;
  /** The ZIP to write (atomically: temp file, then rename). */
  out: string;
  captionExtension?: string;
  /** Images without a caption: "include" (fal then uses default_caption / its own), or "error". */
  missingCaption?: "include" | "error";
}

export interface PackZipSummary {
  out: string;
  images: number;
  captions: number;
  missingCaptions: string[];
  /** Entry names in archive order. */
  entries: string[];
}

// A fixed timestamp so the same inputs give the same bytes (reproducible uploads, cacheable).
const FIXED_MTIME = new Date("2000-01-01T00:00:00Z");

/**
 * The archive fal trainers take as `images_data_url` / `image_data_url` (trainers.md §4.1):
 * images plus same-name `.txt` captions, flat at the archive root, sorted by name, fixed
 * timestamps, no path able to escape the root. Sub-folders are flattened with `__`.
 */
export async function packZip(params: PackZipParams): Promise<PackZipSummary> {
  const ext = params.captionExtension ?? ".txt";
  const files = await listDatasetFiles({ dir: params.dir, captionExtension: ext });
  if (files.images.length === 0) throw new LoraspecError("E_DATASET_EMPTY", `no images to pack in ${params.dir}`, { file: params.dir });
  const captions = new Set(files.captions);
  const zip = new yazl.ZipFile();
  const summary: PackZipSummary = { out: params.out, images: 0, captions: 0, missingCaptions: [], entries: [] };
  const used = new Set<string>();
  const entries: Array<{ name: string; path: string }> = [];
  for (const image of files.images) {
    const stem = image.slice(0, image.length - extname(image).length);
    const flatStem = safeName(stem.split("/").join("__"));
    const name = `${flatStem}${extname(image).toLowerCase()}`;
    if (used.has(name.toLowerCase())) throw new LoraspecError("E_FILE_EXISTS", `two images pack to the same name ${name}`, { file: image, hint: "rename one of them" });
    used.add(name.toLowerCase());
    entries.push({ name, path: join(params.dir, image) });
    summary.images++;
    const caption = `${stem}${ext}`;
    if (captions.has(caption)) {
      // fal reads ROOT.txt beside ROOT.<image ext>; always .txt whatever the local extension.
      entries.push({ name: `${flatStem}.txt`, path: join(params.dir, caption) });
      summary.captions++;
    } else summary.missingCaptions.push(image);
  }
  if (summary.missingCaptions.length && params.missingCaption === "error") {
    throw new LoraspecError("E_DATASET_EMPTY", `${summary.missingCaptions.length} image(s) have no caption`, {
      details: { images: summary.missingCaptions },
      hint: "run `loraspec caption`, or let the trainer use default_caption",
    });
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const data = await readFile(entry.path);
    // Images are already compressed; captions are tiny. Store images, deflate text.
    zip.addBuffer(data, entry.name, { mtime: FIXED_MTIME, mode: 0o100644, compress: entry.name.endsWith(".txt") });
    summary.entries.push(entry.name);
  }
  zip.end();
  await mkdir(dirname(params.out), { recursive: true });
  const tmp = `${params.out}.${process.pid}.tmp`;
  try {
    await pipeline(zip.outputStream, createWriteStream(tmp));
    await rename(tmp, params.out);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  return summary;
}

/** One path segment, no separators, no dot-dot, no leading dot, nothing a ZIP reader could misuse. */
function safeName(name: string): string {
  const cleaned = name.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, "_").replace(/^\.+/, "_");
  const normal = posix.normalize(cleaned);
  return normal === "." || normal === ".." || normal === "" ? "_" : normal;
}
