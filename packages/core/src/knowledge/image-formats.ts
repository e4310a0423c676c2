import type { Sourced } from "./types.js";

/**
 * What counts as an image, in one place (lower-case extensions with the dot). Three facts, not one:
 * what dataset prep can decode, what the built-in trainer reads (BUILTIN_TRAINER.imageExtensions in
 * knowledge/builtin-trainer.ts, which the worker loads), and what a browser shows (the web page's files, validation samples).
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

/** Extensions every browser displays: the web page's image files and validation samples. */
export const WEB_IMAGES: ExtensionFact = {
  value: [".png", ".jpg", ".jpeg", ".webp"],
  source: "MDN 'Image file type and format guide' (PNG, JPEG, WebP: supported by all current browsers)",
  asOf: "2026-12",
};

export const DECODABLE_IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(DECODABLE_IMAGES.value);
export const WEB_IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(WEB_IMAGES.value);

/**
 * The colour transparent pixels are flattened onto, wherever an image becomes training pixels:
 * prep (sharp flatten), check's and prep's duplicate signatures, the captioner's input, and the
 * built-in trainer reading a folder prep did not write (BUILTIN_TRAINER.flattenBackground, which the
 * worker loads). Without it PIL's convert("RGB") keeps whatever colour the transparent pixels store
 * (often black), so a cut-out subject trains on a different background than prep would give it.
 */
export const FLATTEN_BACKGROUND: Sourced & { value: string } = {
  value: "#ffffff",
  source: "ours: kohya-ss/sd-scripts library/train_util.py load_image (RGBA pasted onto white) and sharp's flatten default; one colour for every reader",
  asOf: "2026-12-02",
};
