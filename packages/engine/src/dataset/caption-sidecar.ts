import { extname } from "node:path";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { formatBytes } from "../fs/format-bytes.js";
import { readAtMost } from "../fs/read-small-file.js";

/**
 * Which caption file belongs to which image, and how its bytes become text: one rule for check's
 * scan, prep's caption copy and anything else that reads a dataset's sidecars.
 *
 * Pairing: same folder and stem, caption extension compared without case (a camera folder's
 * `IMG_01.JPG` + `IMG_01.TXT` is a pair; the prepared copy gets the contract's extension, which is
 * what the trainers look for). An exact-case match wins when both exist.
 */
export function pairSidecars(images: readonly string[], captions: readonly string[], captionExt: string): Map<string, string> {
  const want = captionExt.toLowerCase();
  const byStem = new Map<string, string>();
  for (const caption of captions) {
    const ext = extname(caption);
    if (ext.toLowerCase() !== want) continue;
    const stem = caption.slice(0, caption.length - ext.length);
    const seen = byStem.get(stem);
    if (seen === undefined || ext === captionExt) byStem.set(stem, caption);
  }
  const pairs = new Map<string, string>();
  for (const image of images) {
    const caption = byStem.get(image.slice(0, image.length - extname(image).length));
    if (caption !== undefined) pairs.set(image, caption);
  }
  return pairs;
}

/**
 * Why an orphan caption found no image, where the name says: `photo.jpg.txt` is named after
 * `photo.jpg` with its extension, which no trainer pairs (they read `photo.txt`). Keyed by caption,
 * for the orphans that are; the hint names the rename (nothing is renamed), or, when the image already
 * has its caption, says to keep one of the two. The image's extension is compared without case, as pairing does.
 */
export function orphanCaptionHints(orphans: readonly string[], images: readonly string[], sidecars: ReadonlyMap<string, string>): Record<string, string> {
  const stemOf = (path: string) => path.slice(0, path.length - extname(path).length);
  const byName = new Map(images.map((image) => [stemOf(image) + extname(image).toLowerCase(), image]));
  const hints: Record<string, string> = {};
  for (const orphan of orphans) {
    const named = stemOf(orphan); // photo.jpg
    const image = byName.get(stemOf(named) + extname(named).toLowerCase());
    if (image === undefined || extname(named) === "") continue;
    const taken = sidecars.get(image);
    const rename = `${stemOf(named)}${extname(orphan)}`;
    hints[orphan] = taken
      ? `named after ${image} with its extension; ${image} already has its caption ${taken}: keep one of the two`
      : `named after ${image} with its extension: rename ${orphan} -> ${rename}`;
  }
  return hints;
}

/** An orphan caption as messages list it: with its hint when it has one. */
export function describeOrphan(orphan: string, hints: Readonly<Record<string, string>>): string {
  return hints[orphan] ? `${orphan} (${hints[orphan]})` : orphan;
}

export interface CaptionProblem {
  code: "caption-not-utf8" | "caption-too-large";
  message: string;
}

export type DecodedCaption = { text: string; problem?: undefined } | { text?: undefined; problem: CaptionProblem };

/**
 * A caption file as check's scan, prep and `caption --fix` read it: one over FILE_LIMITS.caption is
 * a `caption-too-large` problem, decided by a stat and never read (a multi-GB file named like a
 * caption costs nothing); else decodeCaption. Undefined: no file to read (missing, a folder, a pipe).
 */
export async function readCaptionFile(path: string): Promise<DecodedCaption | undefined> {
  const read = await readAtMost(path, FILE_LIMITS.caption.bytes).catch(() => undefined);
  if (read?.kind !== "file") return undefined;
  if (read.truncated) {
    const limit = FILE_LIMITS.caption;
    return { problem: { code: "caption-too-large", message: `${formatBytes(read.size)}, more than a caption can be (at most ${formatBytes(limit.bytes)}): left out unread` } };
  }
  return decodeCaption(read.bytes);
}

/**
 * A caption file's bytes as text: UTF-8, a leading byte-order mark dropped (Notepad writes one; the
 * tokenizer would see it as a character before the trigger word). Bytes that are not UTF-8 (a
 * Latin-1 or Windows-1252 export) are a problem, not guessed at: the caption is left out and the user
 * re-saves it as UTF-8.
 */
export function decodeCaption(bytes: Uint8Array): DecodedCaption {
  try {
    // TextDecoder drops a leading BOM by default (ignoreBOM: false).
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch {
    const at = firstInvalidUtf8(bytes);
    return {
      problem: {
        code: "caption-not-utf8",
        message: `not UTF-8 text (byte 0x${(bytes[at] ?? 0).toString(16).padStart(2, "0")} at offset ${at}, e.g. a Latin-1 export): left out; save it as UTF-8`,
      },
    };
  }
}

/** Offset of the first byte that breaks UTF-8's lead/continuation structure (for the message only). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.byteLength; ) {
    const b = bytes[i]!;
    const n = b < 0x80 ? 0 : b >= 0xc2 && b < 0xe0 ? 1 : b >= 0xe0 && b < 0xf0 ? 2 : b >= 0xf0 && b < 0xf5 ? 3 : -1;
    if (n < 0) return i;
    for (let k = 1; k <= n; k++) if (((bytes[i + k] ?? 0) & 0xc0) !== 0x80) return i;
    i += n + 1;
  }
  return 0;
}
