import { readFile, stat } from "node:fs/promises";
import { z } from "zod";
import { atomicWrite } from "../fs/atomic-write.js";

/** File name of the manifest inside the prepared folder. */
export const MANIFEST_FILE = "manifest.json";

const ProblemSchema = z.object({ code: z.string(), severity: z.enum(["skip", "warn"]), message: z.string() });

export const ManifestEntrySchema = z.object({
  /** Source path relative to the dataset folder: the image's identity. */
  source: z.string(),
  size: z.number(),
  sha256: z.string(),
  /** Near-duplicate signature (image-signature.ts): re-runs compare without decoding again. */
  signature: z.object({ phash: z.string(), contrast: z.number(), thumb: z.string() }).optional(),
  width: z.number(),
  height: z.number(),
  status: z.enum(["prepared", "skipped", "duplicate"]),
  problems: z.array(ProblemSchema),
  /** Output name stem, stable for the life of the source (captions follow it). */
  name: z.string().optional(),
  /** Crop in oriented source pixels. */
  crop: z.object({ left: z.number(), top: z.number(), width: z.number(), height: z.number() }).optional(),
  output: z.string().optional(),
  outputWidth: z.number().optional(),
  outputHeight: z.number().optional(),
  caption: z.string().optional(),
  /** sha256 of the source sidecar caption last copied in, so a changed sidecar can be picked up. */
  sidecarSha256: z.string().optional(),
  /** sha256 of the prepared caption as we last wrote it (tells a hand edit from our copy). */
  captionSha256: z.string().optional(),
  duplicateOf: z.string().optional(),
});

/** A path as a manifest records it: hostile input, so bounded and NUL-free (Node's fs refuses NUL). */
const pathText = z.string().min(1).max(4096).refine((p) => !p.includes("\0"), "no NUL in a path");

export const ManifestSchema = z.object({
  version: z.literal(1),
  /** Dataset folder the sources are relative to (absolute at write time). */
  dataset: pathText,
  /**
   * The same folder relative to the prepared folder (written since prepared folders are matched to
   * their dataset, prepared-folder.ts): a project moved or copied as a whole still matches. Older
   * manifests have none and match by `dataset` alone.
   */
  datasetRelative: pathText.optional(),
  /** Everything that changes the pixels of an output; a change re-processes every image. */
  settings: z.record(z.string(), z.unknown()),
  updatedAt: z.string(),
  entries: z.array(ManifestEntrySchema),
  /**
   * Every input the run read (prep-inputs.ts: images, caption sidecars, the pins, the contract's settings), which
   * check compares with the same list made from the disk now (prepared-stale.ts). Older manifests have none: check
   * then compares images (entries) and settings only. A kind this version does not know is kept and never judged.
   */
  inputs: z.array(z.object({ kind: z.string().max(64), name: z.string().max(4096), value: z.string().max(65536) })).optional(),
});

export type PrepManifest = z.infer<typeof ManifestSchema>;
export type ManifestEntry = z.infer<typeof ManifestEntrySchema>;

/**
 * A manifest larger than this is not read (treated as unreadable): an entry is ~4.5 KB (its base64
 * dedupe thumbnail), so this is ~28,000 images, far above a LoRA dataset; a hostile or runaway file
 * never makes check, caption or train parse gigabytes.
 */
export const MAX_MANIFEST_BYTES = 128 * 1024 * 1024;

/**
 * Reads a manifest as hostile input; a missing or unreadable one (not a plain file, over
 * MAX_MANIFEST_BYTES, bad JSON, not the schema) means "start fresh" (returns undefined, never throws).
 */
export async function readPrepManifest(params: { path: string }): Promise<PrepManifest | undefined> {
  let text: string;
  try {
    // stat first: a FIFO or device named manifest.json would block or never end.
    const info = await stat(params.path);
    if (!info.isFile() || info.size > MAX_MANIFEST_BYTES) return undefined;
    text = await readFile(params.path, "utf8");
  } catch {
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = ManifestSchema.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}

export async function writePrepManifest(params: { path: string; manifest: PrepManifest }): Promise<void> {
  await atomicWrite(params.path, `${JSON.stringify(params.manifest, null, 2)}\n`);
}
