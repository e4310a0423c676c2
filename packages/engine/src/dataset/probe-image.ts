import { createHash } from "node:crypto";
import { trainingShape, type ShapeRule } from "@loraspec/core/plan/trainer-buckets.js";
import sharp, { type Metadata } from "sharp";
import { signatureFromBytes, type ImageSignature } from "./image-signature.js";
import { EXTREME_ASPECT_RATIO, MAX_INPUT_PIXELS, SMALL_IMAGE_RATIO } from "./prep-knowledge.js";

export type ImageProblemCode =
  | "unreadable"
  | "not-an-image"
  | "truncated"
  | "too-large"
  /** Over FILE_LIMITS.image bytes: left out unread (read-image-file.ts). */
  | "image-too-large"
  /** Short side under SMALL_IMAGE_RATIO.skip x resolution where prep would upscale it (square, core's set): skipped. */
  | "too-small"
  /** Prep scales the image up to the shape it trains at (its short side, or a bucket side, is below the target's). */
  | "upscaled"
  /** ai-toolkit bucketing: under resolution², the image trains at its own area (smaller than the resolution), not upscaled. */
  | "trains-at-own-size"
  /** ai-toolkit bucketing: short side under SMALL_IMAGE_RATIO.skip x resolution; kept (not upscaled), but it trains far below the set's resolution. */
  | "far-below-resolution"
  | "extreme-aspect"
  | "first-frame-only"
  | "duplicate"
  | "near-duplicate";

export interface ImageProblem {
  code: ImageProblemCode;
  /** `skip`: the image is left out; `warn`: it is used, but the user should know. */
  severity: "skip" | "warn";
  message: string;
}

/** What one look at a source file tells us (header, content hash, a tiny decoded thumbnail). */
export interface ProbedImage {
  /** Path relative to the dataset folder, with `/` separators (the image's identity). */
  source: string;
  size: number;
  sha256: string;
  format?: string;
  /** Width and height after EXIF orientation. */
  width: number;
  height: number;
  orientation?: number;
  space?: string;
  depth?: string;
  hasAlpha?: boolean;
  isPalette?: boolean;
  /** DCT hash, contrast and thumbnail of the oriented, flattened image, for near-duplicate search. */
  signature?: ImageSignature;
  problems: ImageProblem[];
}

export interface ProbeImageParams {
  source: string;
  bytes: Uint8Array;
  /** Training resolution (short side the prepared image will have). */
  resolution: number;
  maxPixels?: number;
  maxAspect?: number;
  /** Colour transparent pixels are flattened onto (prep's --background). */
  background?: string;
  /** With aspect buckets: the rule prep shapes the image by (core's shapeRule); without it, a resolution x resolution square. */
  shapes?: ShapeRule;
  /**
   * Also decode a thumbnail for the signature (and so catch truncated files here). prepareDataset
   * turns this off: it signs from the one full decode it does anyway (a noisy JPEG's entropy
   * decoding costs about as much at 1/8 scale as at full size, so two decodes cost two).
   */
  hash?: boolean;
}

/**
 * The size rules prep applies to an image of width x height (after EXIF orientation): too elongated is
 * skipped; a short side under SMALL_IMAGE_RATIO.skip x resolution is skipped where prep would upscale it
 * to its shape (square crops, core's set: Kohya, the built-in trainer, no contract) and kept with a
 * "far-below-resolution" warning under ai-toolkit's picker (it trains at about its own area, not
 * upscaled: farBelowResolution); otherwise scaleProblem says whether it is upscaled to the shape it
 * trains at (`shapes`, else a resolution x resolution square). `check`'s preflight counts what prep
 * would keep with this same function.
 */
export function sizeProblems(width: number, height: number, resolution: number, maxAspect: number = EXTREME_ASPECT_RATIO.value, shapes?: ShapeRule): ImageProblem[] {
  const problems: ImageProblem[] = [];
  const short = Math.min(width, height);
  if (short < resolution * SMALL_IMAGE_RATIO.value.skip) {
    problems.push(farBelowResolution(width, height, resolution, shapes));
  } else {
    const scaled = scaleProblem(width, height, resolution, shapes);
    if (scaled) problems.push(scaled);
  }
  const aspect = Math.max(width, height) / Math.max(1, short);
  if (aspect > maxAspect) {
    problems.push({ code: "extreme-aspect", severity: "skip", message: `aspect ratio ${aspect.toFixed(2)}:1 is over ${maxAspect}:1; a crop would keep too little of it` });
  }
  return problems;
}

/**
 * An image whose short side is under SMALL_IMAGE_RATIO.skip x resolution. Where prep scales it up to its
 * shape (no rule or core's set) it would be upscaled over 1/skip: "too-small", skipped. ai-toolkit's picker
 * (trainingShape) keeps its own area, so nothing blurs it: it is kept, with a warning naming the shape it
 * trains at, far below the resolution the rest of the set trains at.
 */
function farBelowResolution(width: number, height: number, resolution: number, shapes?: ShapeRule): ImageProblem {
  if (shapes?.picker === "ai-toolkit") {
    const shape = trainingShape(shapes, resolution, { width, height });
    return {
      code: "far-below-resolution",
      severity: "warn",
      message: `${width}x${height} is under half the ${resolution}px training resolution: ai-toolkit trains it at ${shape.width}x${shape.height} (not upscaled), far below the ${resolution}px the rest of the set trains at; a bigger source teaches more detail`,
    };
  }
  return { code: "too-small", severity: "skip", message: `${width}x${height} is far below the ${resolution}px training resolution (upscaling over 2x teaches blur)` };
}

/**
 * What happens to an image's pixels at the shape it trains at (trainingShape, what prep cuts): "upscaled"
 * when prep scales it up to cover that shape (square crops and core's bucket set: Kohya, the built-in
 * trainer); for ai-toolkit's picker, an image under resolution² keeps its own area ("trains-at-own-size",
 * sides rounded onto its divisibility), and one at or over it is scaled down: neither is upscaled.
 */
export function scaleProblem(width: number, height: number, resolution: number, shapes?: ShapeRule): ImageProblem | undefined {
  if (width <= 0 || height <= 0 || resolution <= 0) return undefined;
  if (shapes?.picker === "ai-toolkit") {
    if (width * height >= resolution * resolution) return undefined;
    const shape = trainingShape(shapes, resolution, { width, height });
    return {
      code: "trains-at-own-size",
      severity: "warn",
      message: `${width}x${height} is under the ${resolution}px training resolution: ai-toolkit trains it at ${shape.width}x${shape.height}, about its own size (not upscaled; sides on ${shapes.divisibility} px)`,
    };
  }
  const shape = shapes ? trainingShape(shapes, resolution, { width, height }) : { width: resolution, height: resolution };
  const factor = Math.max(shape.width / width, shape.height / height);
  if (factor <= SMALL_IMAGE_RATIO.value.warn) return undefined;
  return { code: "upscaled", severity: "warn", message: `${width}x${height} is upscaled ${factor.toFixed(2)}x to ${shape.width}x${shape.height} (the ${resolution}px training resolution)` };
}

/** The codes sizeProblems decides from an image's size and the rule (a reused manifest entry has them said again). */
export const SIZE_PROBLEM_CODES: readonly ImageProblemCode[] = ["too-small", "far-below-resolution", "upscaled", "trains-at-own-size", "extreme-aspect"];

/** Looks at one image without ever throwing: every failure becomes a problem on the result. */
export async function probeImage(params: ProbeImageParams): Promise<ProbedImage> {
  const { source, bytes, resolution } = params;
  const maxPixels = params.maxPixels ?? MAX_INPUT_PIXELS.value;
  const maxAspect = params.maxAspect ?? EXTREME_ASPECT_RATIO.value;
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const base: ProbedImage = { source, size: bytes.byteLength, sha256, width: 0, height: 0, problems: [] };
  if (bytes.byteLength === 0) {
    return { ...base, problems: [{ code: "unreadable", severity: "skip", message: "cannot decode: the file is empty (0 bytes)" }] };
  }
  let meta: Metadata;
  try {
    // Header only: nothing is decoded yet, so a decompression bomb costs nothing here.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    const text = String((error as Error).message ?? error);
    if (/\.(heic|heif)$/i.test(source)) {
      // sharp's prebuilt libheif decodes AV1 (AVIF) only; iPhone HEIC is HEVC.
      return {
        ...base,
        problems: [{ code: "unreadable", severity: "skip", message: `HEIC/HEIF that this sharp build cannot decode (HEVC needs a libvips built with it): convert it to JPEG or PNG (${firstLine(text)})` }],
      };
    }
    const notImage = /unsupported image format/i.test(text);
    if (notImage && bytes[0] === 0x42 && bytes[1] === 0x4d) {
      // "BM": a Windows bitmap, which libvips (sharp's prebuilt binaries) has no loader for.
      return { ...base, problems: [{ code: "not-an-image", severity: "skip", message: "a BMP image, which loraspec's image library (sharp) does not decode: convert it to PNG (e.g. `magick x.bmp x.png`)" }] };
    }
    return {
      ...base,
      problems: [
        notImage
          ? { code: "not-an-image", severity: "skip", message: "not an image sharp can read (wrong extension, or an unsupported format)" }
          : { code: /premature end|truncat|corrupt header/i.test(text) ? "truncated" : "unreadable", severity: "skip", message: headerFailure(text) },
      ],
    };
  }
  const width = meta.autoOrient?.width ?? meta.width ?? 0;
  const height = meta.autoOrient?.height ?? meta.height ?? 0;
  const probed: ProbedImage = {
    ...base,
    format: meta.format,
    width,
    height,
    orientation: meta.orientation,
    space: meta.space,
    depth: meta.depth,
    hasAlpha: meta.hasAlpha,
    isPalette: meta.isPalette,
  };
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixels > maxPixels) {
    probed.problems.push({
      code: "too-large",
      severity: "skip",
      message: `${meta.width}x${meta.height} = ${pixels.toLocaleString("en-US")} px is over the ${maxPixels.toLocaleString("en-US")} px limit (decompression-bomb guard)`,
    });
    return probed;
  }
  if (params.hash !== false) {
    try {
      probed.signature = await signatureFromBytes(bytes, { maxPixels, background: params.background });
    } catch (error) {
      probed.problems.push(decodeProblem(bytes, meta.format, error));
      return probed;
    }
  }
  probed.problems.push(...sizeProblems(width, height, resolution, maxAspect, params.shapes));
  // sharp (and so prep, and the signature) decodes the first page unless told otherwise: say so for an animation.
  if ((meta.pages ?? 1) > 1) {
    probed.problems.push({ code: "first-frame-only", severity: "warn", message: `${meta.pages} frames (animated or multi-page ${meta.format}): only the first one is used` });
  }
  return probed;
}

/** A JPEG must end with EOI (FF D9), a PNG with an IEND chunk; a cut-off download has neither. */
function looksTruncated(bytes: Uint8Array, format: string | undefined): boolean {
  const n = bytes.byteLength;
  if (format === "jpeg") {
    // Trailing padding after EOI happens; look for EOI in the last few bytes.
    for (let i = n - 2; i >= Math.max(0, n - 64); i--) if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return false;
    return true;
  }
  if (format === "png") return !Buffer.from(bytes.buffer, bytes.byteOffset, n).subarray(Math.max(0, n - 64)).includes("IEND");
  return false;
}

/**
 * A decode failure of one file as a problem: over the pixel limit, truncated (decided from the bytes) or
 * damaged. Only for errors about the file: prep checks its settings first (prep-params.ts) and blames a
 * file only once the same settings decode a known-good image (prep-decode.ts settingsControl).
 */
export function decodeProblem(bytes: Uint8Array, format: string | undefined, error: unknown): ImageProblem {
  const text = firstLine(String((error as Error).message ?? error));
  if (/exceeds pixel limit/i.test(text)) {
    return { code: "too-large", severity: "skip", message: `cannot decode: more pixels than the limit (decompression-bomb guard; ${sharpSays(text)})` };
  }
  // libvips' error text is process-global and can mix under concurrency: decide by the bytes.
  const truncated = looksTruncated(bytes, format) || /premature end|truncat/i.test(text);
  return {
    code: truncated ? "truncated" : "unreadable",
    severity: "skip",
    message: truncated ? `cannot decode: the ${format ?? "image"} file is cut short (${sharpSays(text)})` : `cannot decode: the ${format ?? "image"} data is damaged (${sharpSays(text)})`,
  };
}

/**
 * sharp's header error as a whole sentence: its text is often cut off ("Input buffer has corrupt
 * header:" with nothing after the colon, for a PNG cut inside its header or a bare signature).
 */
function headerFailure(text: string): string {
  const said = sharpSays(text);
  if (/corrupt header/i.test(text)) return `cannot decode: the file's header is corrupt or cut short (${said})`;
  if (/is empty/i.test(text)) return `cannot decode: the file is empty (${said})`;
  return `cannot decode: sharp cannot read the file (${said})`;
}

/** "sharp: <first line>", without a dangling colon; "sharp gave no detail" when it said nothing. */
function sharpSays(text: string): string {
  const line = firstLine(text).replace(/[:\s]+$/, "");
  return line ? `sharp: ${line}` : "sharp gave no detail";
}

function firstLine(text: string): string {
  return (text.split("\n")[0] ?? text).trim();
}
