import { readdir, stat } from "node:fs/promises";
import { extname, join, relative, resolve, sep } from "node:path";
import { parse as parseYaml } from "yaml";
import { LoraspecError } from "@loraspec/core/errors.js";

export { WEB_IMAGE_EXTENSIONS as IMAGE_EXTENSIONS } from "@loraspec/core/knowledge/image-formats.js";
import { WEB_IMAGE_EXTENSIONS as IMAGE_EXTENSIONS } from "@loraspec/core/knowledge/image-formats.js";
import { pairSidecars } from "../dataset/caption-sidecar.js";
import { hiddenEntry } from "../dataset/list-dataset-files.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readSmallText } from "../fs/read-small-file.js";

/** The few contract fields the server itself needs, read leniently (the contract may be mid-edit). */
export interface ContractBasics {
  datasetPath: string;
  captionExtension: string;
  trigger: string;
  captionStyle: "natural" | "tags";
  resolution?: number;
  crop: "center" | "attention";
}

/** The contract's text; one over FILE_LIMITS.contract is refused unread (E_FILE_TOO_LARGE naming `shown`). */
export async function readContractText(file: string, shown = file): Promise<string> {
  try {
    return await readSmallText({ file, limit: FILE_LIMITS.contract, shown });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new LoraspecError("E_CONTRACT_NOT_FOUND", `No contract at ${shown}.`, {
        file: shown,
        hint: "Create one from the example on the Project page, or run `loraspec init`.",
      });
    }
    if (code === "EISDIR" || code === "ENOTREG") {
      throw new LoraspecError("E_CONTRACT_NOT_FOUND", `${shown} is ${code === "EISDIR" ? "a folder" : "not a regular file"}, not a contract.`, { file: shown });
    }
    throw error;
  }
}

export function contractBasics(text: string): ContractBasics {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch {
    doc = undefined;
  }
  const get = (path: string[]): unknown => path.reduce<unknown>((o, k) => (o && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined), doc);
  const str = (v: unknown, d: string) => (typeof v === "string" && v.length > 0 ? v : d);
  const resolution = get(["dataset", "resolution"]);
  return {
    datasetPath: str(get(["dataset", "path"]), "./dataset"),
    captionExtension: str(get(["captions", "extension"]), ".txt"),
    trigger: str(get(["trigger", "word"]), ""),
    captionStyle: get(["captions", "style"]) === "tags" ? "tags" : "natural",
    resolution: typeof resolution === "number" ? resolution : undefined,
    crop: get(["dataset", "crop"]) === "attention" ? "attention" : "center",
  };
}

/** Image files of a dataset folder (recursively, hidden files and folders skipped), sorted by path. */
export async function listImages(dir: string): Promise<string[]> {
  return (await listImageFiles(dir)).images;
}

/**
 * The dataset folder as the page lists it: its image files (recursively), sorted by path, and the
 * hidden files and folders it leaves out unread (names starting with "."; folders with a trailing
 * "/"; not `.loraspec/`), named by the same rule as check and prep (list-dataset-files.ts hiddenEntry).
 */
export async function listImageFiles(dir: string): Promise<{ images: string[]; hidden: string[] }> {
  const out: string[] = [];
  const hidden: string[] = [];
  const root = resolve(dir);
  async function walk(current: string): Promise<void> {
    let entries;
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT" && current === root) {
        throw new LoraspecError("E_DATASET_NOT_FOUND", `Dataset folder ${dir} does not exist.`, { field: "dataset.path" });
      }
      throw error;
    }
    for (const entry of entries) {
      const full = join(current, entry.name);
      const rel = relative(root, full).split(sep).join("/");
      if (entry.name.startsWith(".")) {
        const name = hiddenEntry(entry, rel);
        if (name) hidden.push(name);
        continue;
      }
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile() && IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase())) out.push(rel);
    }
  }
  await walk(root);
  return { images: out.sort(), hidden: hidden.sort() };
}

/** Files under a folder matching a predicate (recursive, bounded depth), relative and sorted newest first. */
export async function findFiles(params: {
  dir: string;
  match: (name: string) => boolean;
  maxDepth?: number;
  skipHidden?: boolean;
}): Promise<Array<{ path: string; bytes: number; mtime: string }>> {
  const { dir, match, maxDepth = 6, skipHidden = false } = params;
  const out: Array<{ path: string; bytes: number; mtime: string; t: number }> = [];
  async function walk(current: string, depth: number): Promise<void> {
    if (depth > maxDepth) return;
    let entries;
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.name === "node_modules") continue;
      if (skipHidden && entry.name.startsWith(".") && entry.name !== ".loraspec") continue;
      const full = join(current, entry.name);
      if (entry.isDirectory()) await walk(full, depth + 1);
      else if (entry.isFile() && match(entry.name)) {
        const s = await stat(full);
        out.push({ path: relative(dir, full).split(sep).join("/"), bytes: s.size, mtime: s.mtime.toISOString(), t: s.mtimeMs });
      }
    }
  }
  await walk(dir, 0);
  return out.sort((a, b) => b.t - a.t).map(({ t: _t, ...rest }) => rest);
}

export function captionFileFor(imageRel: string, extension: string): string {
  const ext = extname(imageRel);
  return `${imageRel.slice(0, imageRel.length - ext.length)}${extension}`;
}

/**
 * Each image's caption file as check, prep and train pair them (dataset/caption-sidecar.ts: same folder and stem, the
 * extension compared without case, so `IMG_01.TXT` captions `IMG_01.JPG`); an image with none gets the contract's
 * extension (where the page writes a new caption).
 */
export async function captionFilesFor(dir: string, images: readonly string[], extension: string): Promise<Map<string, string>> {
  const folders = [...new Set(images.map((rel) => (rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "")))];
  const captions: string[] = [];
  for (const folder of folders) {
    const entries = await readdir(folder ? join(dir, ...folder.split("/")) : dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isFile() && !e.name.startsWith(".")) captions.push(folder ? `${folder}/${e.name}` : e.name);
  }
  const paired = pairSidecars(images, captions, extension);
  return new Map(images.map((image) => [image, paired.get(image) ?? captionFileFor(image, extension)]));
}
