import { readdir } from "node:fs/promises";
import { extname, join, relative, sep } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import { IMAGE_EXTENSIONS } from "./prep-knowledge.js";

export interface DatasetFiles {
  /** Image candidates by extension, relative paths with `/`, sorted. */
  images: string[];
  /** Caption sidecars (`.txt` or the contract's extension), relative, sorted. */
  captions: string[];
  /** Everything else (notes, videos, ...): never counted as images. */
  other: string[];
}

/** Lists a dataset folder recursively, skipping dot-folders (`.loraspec`, `.git`). */
export async function listDatasetFiles(params: { dir: string; captionExtension?: string; exclude?: readonly string[] }): Promise<DatasetFiles> {
  const captionExt = (params.captionExtension ?? ".txt").toLowerCase();
  const imageExts = new Set(IMAGE_EXTENSIONS.value);
  const exclude = (params.exclude ?? []).map((p) => join(p));
  const out: DatasetFiles = { images: [], captions: [], other: [] };
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (dir === params.dir && (error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new LoraspecError("E_DATASET_NOT_FOUND", `dataset folder ${dir} does not exist`, { file: dir, hint: "set dataset.path in the contract or pass --dataset" });
      }
      throw error;
    }
    for (const entry of entries) {
      if (entry.name.startsWith(".")) continue;
      const path = join(dir, entry.name);
      if (exclude.some((e) => path === e || path.startsWith(e + sep))) continue;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        const rel = relative(params.dir, path).split(sep).join("/");
        const ext = extname(entry.name).toLowerCase();
        if (imageExts.has(ext)) out.images.push(rel);
        else if (ext === captionExt) out.captions.push(rel);
        else out.other.push(rel);
      }
    }
  };
  await walk(params.dir);
  for (const list of [out.images, out.captions, out.other]) list.sort();
  return out;
}
