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
  source: "sharp 0.35 input formats (JPEG, PNG, WebP, AVIF, TIFF, GIF, HEIF via libheif AV1 only; HEVC HEIC needs a custom libvips). .bmp is listed so a BMP counts as an image and is named: sharp has no BMP loader, so prep says to convert it (probe-image.ts)",
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

/**
 * Decompression-bomb limit on header width x height: loraspec's one limit, checked before any pixel is
 * decoded by check and prep (engine dataset/prep-knowledge.ts re-exports it) and by the built-in trainer
 * (BUILTIN_TRAINER.maxImagePixels, which the worker loads: train/buckets.py). Sharp's own default.
 */
export const MAX_INPUT_PIXELS: Sourced & { value: number } = {
  value: 0x3fff * 0x3fff,
  source: "sharp docs api-constructor.md: limitInputPixels default 268402689; reference/perf-reliability.md §4b",
  asOf: "2026-06",
};

/**
 * Pillow's own decompression-bomb limit, which Kohya sd-scripts and ai-toolkit open images under (neither
 * sets Image.MAX_IMAGE_PIXELS): above MAX_IMAGE_PIXELS (89,478,485 px) a DecompressionBombWarning, above twice
 * that a DecompressionBombError, so an image over 178,956,970 px stops their run when it is opened.
 */
export const PIL_DEFAULT_BOMB_PIXELS: Sourced & { value: number } = {
  value: 2 * Math.floor((1024 * 1024 * 1024) / 4 / 3),
  source:
    "Pillow PIL/Image.py MAX_IMAGE_PIXELS = int(1024 * 1024 * 1024 // 4 // 3) and _decompression_bomb_check (error above 2x, since Pillow 4.4.0); reference/perf-reliability.md §4b. sd-scripts v0.10.1 library/train_util.py and ai-toolkit toolkit/data_loader.py open images with Image.open and leave the limit at its default",
  asOf: "2026-12-05",
};
