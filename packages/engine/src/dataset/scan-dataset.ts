import { readdir, readFile, stat } from "node:fs/promises";
import { extname, join, relative } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { DatasetImage, DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";

/** Extensions the quick scan treats as images (what sharp can read the header of). */
export { DECODABLE_IMAGE_EXTENSIONS as IMAGE_EXTENSIONS } from "@loraspec/core/knowledge/image-formats.js";
import { DECODABLE_IMAGE_EXTENSIONS as IMAGE_EXTENSIONS } from "@loraspec/core/knowledge/image-formats.js";

export interface ScanDatasetParams {
  /** Absolute dataset folder. */
  dir: string;
  /** The folder as the contract names it (messages). */
  displayPath?: string;
  /** Caption sidecar extension, with the dot. */
  captionExtension?: string;
  /** The contract file, named in errors. */
  contractFile?: string;
  /** Look in sub-folders too (kohya's `N_name` repeat folders). */
  recursive?: boolean;
  /** Files read at once. */
  concurrency?: number;
  /** The contract field that names the folder (errors point at it). */
  field?: string;
}

/**
 * A quick scan for `check`: lists images, reads their dimensions from the header only (sharp
 * metadata, no decode), and reads caption sidecars. An unreadable image is collected in
 * `unreadable`, not thrown, so one bad file never hides the others.
 */
export async function scanDataset({
  dir,
  displayPath = dir,
  captionExtension = ".txt",
  contractFile,
  recursive = true,
  concurrency = 8,
  field = "dataset.path",
}: ScanDatasetParams): Promise<DatasetSummary> {
  const info = await stat(dir).catch(() => undefined);
  if (!info || !info.isDirectory()) {
    throw new LoraspecError("E_DATASET_NOT_FOUND", `dataset folder '${displayPath}' ${info ? "is not a folder" : "does not exist"}`, {
      file: contractFile,
      field,
      hint: `${field} is relative to the contract file; point it at your folder of images.`,
    });
  }
  const files = await listFiles(dir, recursive);
  const imageFiles = files.filter((f) => IMAGE_EXTENSIONS.has(extname(f).toLowerCase())).sort();
  const fileSet = new Set(files);
  const { default: sharp } = await import("sharp");
  const images: DatasetImage[] = [];
  const unreadable: { file: string; reason: string }[] = [];
  let next = 0;
  const worker = async () => {
    while (next < imageFiles.length) {
      const abs = imageFiles[next++]!;
      const file = relative(dir, abs);
      try {
        const meta = await sharp(abs, { failOn: "error" }).metadata();
        if (!meta.width || !meta.height) throw new Error("no dimensions in the header");
        // EXIF orientations 5-8 rotate by 90 degrees: the image displays (and trains) transposed.
        const swap = (meta.orientation ?? 1) >= 5;
        const sidecar = abs.slice(0, abs.length - extname(abs).length) + captionExtension;
        const caption = fileSet.has(sidecar) ? (await readFile(sidecar, "utf8")).trim() : null;
        images.push({
          file,
          width: swap ? meta.height : meta.width,
          height: swap ? meta.width : meta.height,
          format: meta.format ?? extname(abs).slice(1).toLowerCase(),
          caption,
        });
      } catch (error) {
        unreadable.push({ file, reason: firstLine((error as Error).message) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, imageFiles.length)) }, worker));
  images.sort((a, b) => a.file.localeCompare(b.file));
  unreadable.sort((a, b) => a.file.localeCompare(b.file));
  return { path: displayPath, images, unreadable };
}

async function listFiles(dir: string, recursive: boolean): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith(".")) continue;
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (recursive) out.push(...(await listFiles(path, recursive)));
    } else if (e.isFile()) out.push(path);
  }
  return out;
}

function firstLine(s: string): string {
  return s.split("\n")[0] ?? s;
}
