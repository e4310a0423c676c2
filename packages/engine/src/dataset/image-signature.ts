import { FLATTEN_BACKGROUND } from "@loraspec/core/knowledge/image-formats.js";
import sharp, { type Sharp } from "sharp";
import phash from "sharp-phash";
import { DEDUPE_THUMB_SIZE } from "./prep-knowledge.js";

/**
 * What near-duplicate search knows about one image, all from one small thumbnail of the whole
 * oriented frame with alpha flattened (the pixels training sees, squashed to a square).
 */
export interface ImageSignature {
  /** 64-bit DCT perceptual hash (sharp-phash, 16 hex chars) of the thumbnail. */
  phash: string;
  /** Standard deviation of the grey thumbnail, 0..255: near 0 the image is flat and its hash is noise. */
  contrast: number;
  /** The RGB thumbnail (DEDUPE_THUMB_SIZE squared x 3 bytes, base64): the pixel confirmation compares these. */
  thumb: string;
}

/**
 * Signature from an image already decoded, oriented and flattened (prep's one decode): raw pixels
 * with their sharp `raw` description. Cheap: it only resizes what is in memory.
 */
export async function signatureFromRaw(pixels: Uint8Array, raw: { width: number; height: number; channels: 1 | 2 | 3 | 4 }): Promise<ImageSignature> {
  return signatureOf(sharp(pixels, { raw }));
}

/** Signature straight from file bytes (check, the web page): EXIF orientation applied, alpha flattened onto `background`. */
export async function signatureFromBytes(bytes: Uint8Array, options: { maxPixels: number; background?: string }): Promise<ImageSignature> {
  return signatureOf(sharp(bytes, { failOn: "error", limitInputPixels: options.maxPixels }).rotate().flatten({ background: options.background ?? FLATTEN_BACKGROUND.value }));
}

async function signatureOf(image: Sharp): Promise<ImageSignature> {
  const n = DEDUPE_THUMB_SIZE.value;
  const rgb = await image.resize(n, n, { fit: "fill", kernel: "lanczos3" }).removeAlpha().toColourspace("srgb").raw().toBuffer();
  // sharp-phash greys and samples 32x32 for its DCT; feeding it the thumbnail skips a second decode.
  const bits = await phash(rgb, { raw: { width: n, height: n, channels: 3 } });
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < rgb.length; i += 3) {
    const grey = 0.299 * rgb[i]! + 0.587 * rgb[i + 1]! + 0.114 * rgb[i + 2]!;
    sum += grey;
    sq += grey * grey;
  }
  const mean = sum / (n * n);
  return { phash: bitsToHex(bits), contrast: Math.sqrt(Math.max(0, sq / (n * n) - mean * mean)), thumb: Buffer.from(rgb).toString("base64") };
}

function bitsToHex(bits: string): string {
  let hex = "";
  for (let i = 0; i < bits.length; i += 4) hex += parseInt(bits.slice(i, i + 4), 2).toString(16);
  return hex;
}
