import { FILE_LIMITS } from "../fs/file-limits.js";

/**
 * Limits on what the browser may send. Knowledge-style data: each value says why.
 * source: reference/perf-reliability.md §4b (decompression bombs: keep training-image pixel
 * limits far below sharp's 268 Mpx default, e.g. <= 50 Mpx) and §4e (uploads type-checked,
 * quarantined). asOf: 2026-11.
 */
export const SERVER_LIMITS = {
  /** JSON bodies (contracts, captions, requests): a contract is a few KB. */
  jsonBytes: 1024 * 1024,
  /** One uploaded image: generous for a 50 Mpx PNG of a photo. */
  uploadBytes: 64 * 1024 * 1024,
  /** Decoded pixels sharp may open from the project (thumbnails, crops, uploads). */
  maxInputPixels: 50_000_000,
  /** Side of the thumbnails the dataset grid shows. */
  thumbnailPx: 256,
  /** A caption file the dataset page shows or saves: the one caption limit check and prep use (fs/file-limits.ts). */
  captionBytes: FILE_LIMITS.caption.bytes,
  /** A validation summary (validation.json) sent with the report list. */
  reportJsonBytes: 4 * 1024 * 1024,
  /** Log lines the log tail returns at most. */
  logTailLines: 2000,
  source: "reference/perf-reliability.md §4b, §4e",
  asOf: "2026-11",
} as const;

/** Upload types accepted, with the magic bytes each must start with (the header is not trusted). */
export const IMAGE_UPLOAD_TYPES: ReadonlyArray<{ mime: string; ext: string[]; magic: (b: Uint8Array) => boolean }> = [
  { mime: "image/png", ext: [".png"], magic: (b) => b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 },
  { mime: "image/jpeg", ext: [".jpg", ".jpeg"], magic: (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff },
  {
    mime: "image/webp",
    ext: [".webp"],
    magic: (b) => String.fromCharCode(...b.slice(0, 4)) === "RIFF" && String.fromCharCode(...b.slice(8, 12)) === "WEBP",
  },
];
