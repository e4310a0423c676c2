import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import yazl from "yazl";
import { LoraspecError } from "@loraspec/core/errors.js";
import { listDatasetFiles } from "../dataset/list-dataset-files.js";

/**
 * The ZIP fal's trainers take: images with their same-name `.txt` captions, flat at the root
 * (trainers.md §4.1: "images + same-name .txt captions"). Captions are renamed to `.txt` when the
 * contract uses another extension. Written to a temp name and renamed, so no half ZIP remains.
 */
export async function zipDataset(params: { datasetDir: string; out: string; captionExtension?: string }): Promise<{ path: string; images: number; captions: number }> {
  const files = await listDatasetFiles({ dir: params.datasetDir, captionExtension: params.captionExtension });
  if (files.images.length === 0) {
    throw new LoraspecError("E_DATASET_EMPTY", `no images in ${params.datasetDir}`, { file: params.datasetDir });
  }
  const captionExt = params.captionExtension ?? ".txt";
  const captions = new Set(files.captions);
  const zip = new yazl.ZipFile();
  const used = new Set<string>();
  let captionCount = 0;
  for (const image of files.images) {
    const stem = basename(image, extname(image));
    // Flatten sub-folders; two images with the same file name would collide in fal's flat layout.
    let name = stem;
    for (let i = 2; used.has(name.toLowerCase()); i++) name = `${stem}-${i}`;
    used.add(name.toLowerCase());
    zip.addFile(join(params.datasetDir, image), `${name}${extname(image).toLowerCase()}`);
    const caption = image.slice(0, image.length - extname(image).length) + captionExt;
    if (captions.has(caption)) {
      zip.addFile(join(params.datasetDir, caption), `${name}.txt`);
      captionCount++;
    }
  }
  await mkdir(dirname(params.out), { recursive: true });
  const tmp = `${params.out}.${process.pid}.tmp`;
  await new Promise<void>((resolve, reject) => {
    const out = createWriteStream(tmp);
    out.on("close", () => resolve());
    out.on("error", reject);
    zip.outputStream.on("error", reject);
    zip.outputStream.pipe(out);
    zip.end();
  }).catch(async (error) => {
    await rm(tmp, { force: true });
    throw error;
  });
  await rename(tmp, params.out);
  return { path: params.out, images: files.images.length, captions: captionCount };
}
