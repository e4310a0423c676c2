import { lstat, readdir, stat } from "node:fs/promises";
import { extname, join, relative, sep } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import { orphanCaptionHints, pairSidecars } from "./caption-sidecar.js";
import { nameFew } from "./name-few.js";
import { IMAGE_EXTENSIONS } from "./prep-knowledge.js";

/** loraspec's own folder (prepared copies, runs): not the user's hidden files. */
const LORASPEC_DIR = ".loraspec";
/**
 * Folder inside a prepared folder where a prep run's outputs wait until it commits (prep-commit.ts); a run killed
 * before it could clean up leaves it, and the next prep clears it. Never the user's: left out of every listing
 * unnamed (no image of it is counted, copied or trained on, and no hidden-file finding names it).
 */
export const STAGING_DIR = ".prep-staging";

/**
 * How a folder entry is listed among the hidden files (names starting with "."; a folder with a
 * trailing "/"), given its path relative to the dataset; undefined when it is not hidden or is
 * loraspec's own `.loraspec/` or a prep run's leftover `.prep-staging/`. One rule for check, prep and the web page's listing.
 */
export function hiddenEntry(entry: { name: string; isDirectory(): boolean }, relPath: string): string | undefined {
  if (!entry.name.startsWith(".") || entry.name === LORASPEC_DIR || (entry.name === STAGING_DIR && entry.isDirectory())) return undefined;
  return entry.isDirectory() ? `${relPath}/` : relPath;
}

/** Something in the folder prep does not read, and why. */
export interface SkippedEntry {
  /** Relative path with `/`. */
  path: string;
  code: "unreadable-folder" | "symlink" | "not-a-file" | "name-not-utf8";
  message: string;
}

export interface DatasetFiles {
  /** Image candidates by extension, relative paths with `/`, sorted. */
  images: string[];
  /** Caption sidecars (`.txt` or the contract's extension), relative, sorted. */
  captions: string[];
  /** Image -> its caption file (caption-sidecar.ts pairSidecars: same stem, extension without case). */
  sidecars: Map<string, string>;
  /** Captions with no image of the same stem beside them. */
  orphanCaptions: string[];
  /** Orphans whose name says which image they were meant for (`photo.jpg.txt`): caption -> hint (caption-sidecar.ts orphanCaptionHints). */
  orphanHints: Record<string, string>;
  /** Everything else (notes, videos, ...): never counted as images. */
  other: string[];
  /** Folders that cannot be read, symlinks, sockets: reported, never followed. */
  skipped: SkippedEntry[];
  /**
   * Hidden files and folders (names starting with "."; folders end in "/"): never read, as no trainer
   * reads them (macOS `._x.jpg` twins, `.DS_Store`), but named so nothing is left out unsaid.
   * loraspec's own `.loraspec/` is not listed.
   */
  hidden: string[];
}

export interface ListDatasetFilesParams {
  dir: string;
  captionExtension?: string;
  exclude?: readonly string[];
  /** For errors: the folder as the user named it, the contract file and field. */
  displayPath?: string;
  contractFile?: string;
  field?: string;
  /** Injectable for fault tests (a folder that cannot be read, which root never sees). */
  readdir?: typeof readdir;
}

/**
 * Lists a dataset folder recursively, skipping (and listing as `hidden`) dot-files and dot-folders
 * (`._x.jpg`, `.DS_Store`, `.git`). The folder itself
 * must exist and be a readable folder (coded error); anything inside that cannot be read is a
 * `skipped` row, so one bad sub-folder never stops the scan.
 */
export async function listDatasetFiles(params: ListDatasetFilesParams): Promise<DatasetFiles> {
  const captionExt = (params.captionExtension ?? ".txt").toLowerCase();
  const imageExts = new Set(IMAGE_EXTENSIONS.value);
  const exclude = (params.exclude ?? []).map((p) => join(p));
  const shown = params.displayPath ?? params.dir;
  const where = { file: params.contractFile ?? params.dir, field: params.contractFile ? (params.field ?? "dataset.path") : undefined };
  const info = await stat(params.dir).catch((error: NodeJS.ErrnoException) => error);
  if (info instanceof Error) {
    const denied = info.code === "EACCES" || info.code === "EPERM";
    throw new LoraspecError("E_DATASET_NOT_FOUND", `dataset folder '${shown}' ${denied ? "cannot be read (permission denied)" : "does not exist"}`, {
      ...where,
      hint: params.contractFile ? "dataset.path is relative to the contract file; point it at your folder of images." : "pass --dataset with a folder of images",
    });
  }
  if (!info.isDirectory()) {
    throw new LoraspecError("E_DATASET_NOT_FOUND", `dataset path '${shown}' is a file, not a folder`, { ...where, hint: "point it at the folder that holds your images" });
  }
  const out: DatasetFiles = { images: [], captions: [], sidecars: new Map(), orphanCaptions: [], orphanHints: {}, other: [], skipped: [], hidden: [] };
  const rel = (path: string) => relative(params.dir, path).split(sep).join("/");
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await (params.readdir ?? readdir)(dir, { withFileTypes: true });
    } catch (error) {
      if (dir === params.dir) {
        throw new LoraspecError("E_DATASET_NOT_FOUND", `dataset folder '${shown}' cannot be read (${(error as NodeJS.ErrnoException).code ?? "error"})`, { ...where, hint: "check the folder's owner and mode" });
      }
      out.skipped.push({ path: rel(dir), code: "unreadable-folder", message: `folder cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}); its files are left out` });
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (exclude.some((e) => path === e || path.startsWith(e + sep))) continue;
      if (entry.name.startsWith(".")) {
        const hidden = hiddenEntry(entry, rel(path));
        if (hidden) out.hidden.push(hidden);
        continue;
      }
      const ext = extname(entry.name).toLowerCase();
      if (entry.name.includes("\uFFFD") && (await lstat(path).then(() => false, () => true))) {
        // Node decoded bytes that are not UTF-8 as U+FFFD, so this name opens nothing: say so rather than ENOENT.
        out.skipped.push({ path: rel(path), code: "name-not-utf8", message: "its name is not UTF-8 (shown with U+FFFD for the bytes that are not), so it cannot be opened by that name: rename it (e.g. `convmv -f latin1 -t utf8`)" });
        continue;
      }
      if (entry.isDirectory()) await walk(path);
      else if (entry.isSymbolicLink()) {
        // Never followed: a link can leave the folder or loop; prep reads only files that are here.
        if (imageExts.has(ext) || ext === captionExt) out.skipped.push({ path: rel(path), code: "symlink", message: "symbolic link, not followed: copy the file into the dataset folder" });
        else out.other.push(rel(path));
      } else if (entry.isFile()) {
        if (imageExts.has(ext)) out.images.push(rel(path));
        else if (ext === captionExt) out.captions.push(rel(path));
        else out.other.push(rel(path));
      } else if (imageExts.has(ext)) out.skipped.push({ path: rel(path), code: "not-a-file", message: "not a regular file (a socket, pipe or device)" });
    }
  };
  await walk(params.dir);
  for (const list of [out.images, out.captions, out.other, out.hidden]) list.sort();
  out.sidecars = pairSidecars(out.images, out.captions, params.captionExtension ?? ".txt");
  const paired = new Set(out.sidecars.values());
  out.orphanCaptions = out.captions.filter((c) => !paired.has(c));
  out.orphanHints = orphanCaptionHints(out.orphanCaptions, out.images, out.sidecars);
  out.skipped.sort((a, b) => (a.path < b.path ? -1 : 1));
  return out;
}

/** For "no images": the hidden files that were there, so a folder of `._x.jpg` twins does not look empty. */
export function hiddenFilesNote(hidden: readonly string[]): string {
  return hidden.length ? ` It holds ${hidden.length} hidden file(s), left out because their names start with "." (${nameFew(hidden, 3)}): rename any image that should train.` : "";
}
