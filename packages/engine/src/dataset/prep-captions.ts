import { createHash } from "node:crypto";
import { mkdir, rename } from "node:fs/promises";
import { basename, dirname, extname, join } from "node:path";
import { readCaptionFile } from "./caption-sidecar.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readAtMost } from "../fs/read-small-file.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { atomicWrite } from "../fs/atomic-write.js";
import type { ManifestEntry } from "./prep-manifest.js";
import { exists } from "../fs/exists.js";

/** Folder inside the prepared folder where captions no image uses any more are parked, never deleted. */
export const PARKED_DIR = ".removed";

export interface CaptionSync {
  copied: number;
  missing: number;
  /** Captions set aside because their image's bytes changed since they were written. */
  stale: Array<{ source: string; parked: string }>;
}

/**
 * Prep's captions follow their image by source path: a sidecar is copied in once (and again when it
 * changes while the prepared copy is untouched); a hand edit is never overwritten. A caption that was
 * there before this run's image bytes (the entry's sha256 differs from the last run's) and is not the
 * dataset's own sidecar described other pixels: it is parked in `.removed/` with a `caption-stale`
 * warning, so no caption silently stays beside an image it was not written for; the sidecar, if any,
 * then comes in, else the image counts as missing a caption. Updates each entry's caption hashes.
 */
export async function* syncCaptions(params: {
  outDir: string;
  datasetDir: string;
  entries: Iterable<ManifestEntry>;
  /** Source image -> its caption file in the dataset (list-dataset-files' sidecars); absent: none. */
  sidecars: ReadonlyMap<string, string>;
  previous: ReadonlyMap<string, ManifestEntry>;
}): AsyncGenerator<LoraspecEvent, CaptionSync> {
  const { outDir, datasetDir } = params;
  const result: CaptionSync = { copied: 0, missing: 0, stale: [] };
  for (const entry of params.entries) {
    const captionPath = join(outDir, entry.caption!);
    const sidecarRel = params.sidecars.get(entry.source);
    const sidecarPath = join(datasetDir, sidecarRel ?? entry.source);
    // One reading with check's scan (caption-sidecar.ts): bounded, BOM dropped; bytes that are not UTF-8 are not copied.
    const read = sidecarRel === undefined ? undefined : await readCaptionFile(sidecarPath);
    let sidecar: string | undefined;
    if (read?.problem) yield { type: "warning", code: read.problem.code, message: `${sidecarRel}: ${read.problem.message}`, file: sidecarRel };
    else if (read) sidecar = read.text;
    let current = await readOptional(captionPath);
    const sidecarHash = sidecar === undefined ? undefined : sha256(sidecar);
    const untouched = current !== undefined && sha256(current) === entry.captionSha256;
    const old = params.previous.get(entry.source);
    // Our untouched copy of a sidecar that is still there is the dataset's own pairing (re-copied below if it changed).
    if (current !== undefined && old !== undefined && old.sha256 !== entry.sha256 && !(untouched && sidecar !== undefined)) {
      const parked = await parkCaption(outDir, entry.caption!);
      result.stale.push({ source: entry.source, parked });
      const next = sidecar !== undefined ? `the dataset's ${basename(sidecarPath)} is copied in instead` : "run `loraspec caption` for a new one";
      yield {
        type: "warning",
        code: "caption-stale",
        message: `${entry.source} changed since its caption ${entry.caption} was written: that caption described the old image, so it is moved to ${parked} (copy it back if it still fits; else ${next})`,
        file: entry.source,
      };
      current = undefined;
      entry.captionSha256 = undefined;
      entry.sidecarSha256 = undefined;
    }
    if (sidecar !== undefined && (current === undefined || (untouched && sidecarHash !== entry.sidecarSha256))) {
      await atomicWrite(captionPath, sidecar);
      entry.sidecarSha256 = sidecarHash;
      entry.captionSha256 = sidecarHash;
      current = sidecar;
      if (hasCaptionText(sidecar)) result.copied++;
    }
    // Counted as check counts on the prepared folder (scan-dataset.ts reads it this way; core caption-missing):
    // no file, one over the caption limit or not UTF-8, or only whitespace is no caption.
    const final = current === undefined ? undefined : await readCaptionFile(captionPath);
    if (final?.text === undefined || !hasCaptionText(final.text)) result.missing++;
  }
  return result;
}

/**
 * Moves a caption of the prepared folder into `.removed/` under a free name (`x.txt`, then `x.2.txt`, ...),
 * so an earlier parked caption is never overwritten. Returns its path relative to the prepared folder.
 */
export async function parkCaption(outDir: string, caption: string): Promise<string> {
  const ext = extname(caption);
  const stem = caption.slice(0, caption.length - ext.length);
  let rel = join(PARKED_DIR, caption);
  // Bounded: past that many parked copies of one name the last one is replaced.
  for (let i = 2; i < 1000 && (await exists(join(outDir, rel))); i++) rel = join(PARKED_DIR, `${stem}.${i}${ext}`);
  const to = join(outDir, rel);
  await mkdir(dirname(to), { recursive: true });
  await rename(join(outDir, caption), to);
  return rel;
}

/** Whether a caption says anything: check (scan-dataset.ts trims, core caption-missing), `caption` and prep count a blank one as missing. */
export function hasCaptionText(text: string): boolean {
  return text.trim() !== "";
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * The prepared folder's caption, read at most to the caption limit. A larger one cannot be a copy
 * prep wrote (prep copies only captions within the limit): it reads as a hand edit, kept as it is,
 * its text longer than any copy's so its hash matches none.
 */
async function readOptional(path: string): Promise<string | undefined> {
  const read = await readAtMost(path, FILE_LIMITS.caption.bytes).catch(() => undefined);
  if (read?.kind !== "file") return undefined;
  return read.truncated ? `${read.bytes.toString("utf8")}\u0000(over the caption size limit)` : read.bytes.toString("utf8");
}
