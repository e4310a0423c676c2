import { BUILTIN_TRAINER } from "./builtin-trainer.js";
import type { Sourced } from "./types.js";

/**
 * What counts as an image, in one place (lower-case extensions with the dot). Three facts, not one:
 * what dataset prep can decode, what the built-in trainer reads (its table, which the worker loads),
 * and what a browser shows (the web page's files, validation samples).
 */
export interface ExtensionFact extends Sourced {
  value: readonly string[];
}

/** Extensions prep tries to decode (sharp's input formats). Anything else in a dataset folder is not an image (captions, notes). */
export const DECODABLE_IMAGES: ExtensionFact = {
  value: [".jpg", ".jpeg", ".png", ".webp", ".avif", ".tif", ".tiff", ".gif", ".heic", ".heif", ".jxl", ".bmp"],
  source: "sharp 0.35 input formats (JPEG, PNG, WebP, AVIF, TIFF, GIF, HEIF via libheif AV1 only; HEVC HEIC needs a custom libvips)",
  asOf: "2026-11",
};

/** Extensions the built-in trainer reads from a dataset folder (PIL; worker train/data.py reads this from the table). */
export const TRAINABLE_IMAGES: ExtensionFact = {
  value: BUILTIN_TRAINER.imageExtensions,
  source: BUILTIN_TRAINER.source,
  asOf: BUILTIN_TRAINER.asOf,
};

/** Extensions every browser displays: the web page's image files and validation samples. */
export const WEB_IMAGES: ExtensionFact = {
  value: [".png", ".jpg", ".jpeg", ".webp"],
  source: "MDN 'Image file type and format guide' (PNG, JPEG, WebP: supported by all current browsers)",
  asOf: "2026-12",
};

export const DECODABLE_IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(DECODABLE_IMAGES.value);
export const WEB_IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(WEB_IMAGES.value);
