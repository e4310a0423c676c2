import sharp, { type Sharp } from "sharp";
import { coverCropBox, type CropBox, type Size } from "./crop-geometry.js";
import { OUTPUT_ENCODING } from "./prep-knowledge.js";
import { signatureFromRaw, type ImageSignature } from "./image-signature.js";

export interface ProcessSettings {
  /** Output size (square: resolution x resolution; buckets: the picked bucket). */
  target: Size;
  crop: "center" | "attention";
  format: "png" | "jpeg";
  /** Alpha is flattened onto this colour (CSS colour or hex). */
  background: string;
  maxPixels: number;
  pngCompressionLevel?: number;
  jpegQuality?: number;
}

export interface ProcessedImage {
  data: Buffer;
  /** Crop in oriented source pixels. */
  crop: CropBox;
  width: number;
  height: number;
  /** Near-duplicate signature of the whole (uncropped) oriented image, from the same decode. */
  signature: ImageSignature;
}

/**
 * One decode per image: EXIF orientation, alpha flattened, sRGB 8-bit, Lanczos3 resize so the
 * image just covers the target (JPEG shrink-on-load stays on: nothing is extracted before the
 * resize). From those pixels in memory: the dedupe signature of the whole frame, then the crop (centre, or
 * sharp's attention strategy) and the encode. Metadata is stripped.
 */
export async function processImage(params: { bytes: Uint8Array; source: Size; settings: ProcessSettings }): Promise<ProcessedImage> {
  const { bytes, source, settings } = params;
  const { target } = settings;
  const { data: pixels, info } = await sharp(bytes, { failOn: "error", limitInputPixels: settings.maxPixels })
    .rotate()
    .flatten({ background: settings.background })
    .resize(target.width, target.height, { fit: "outside", kernel: "lanczos3" })
    .toColourspace("srgb")
    .raw()
    .toBuffer({ resolveWithObject: true });
  const raw = { raw: { width: info.width, height: info.height, channels: info.channels } } as const;
  const signature = await signatureFromRaw(pixels, { width: info.width, height: info.height, channels: info.channels as 1 | 2 | 3 | 4 });

  let cropped: Sharp;
  let offset: { left: number; top: number };
  if (settings.crop === "attention" && (info.width > target.width || info.height > target.height)) {
    const probe = await sharp(pixels, raw).resize(target.width, target.height, { fit: "cover", position: sharp.strategy.attention }).raw().toBuffer({ resolveWithObject: true });
    // sharp reports the attention crop's offset as a negative extract offset.
    offset = { left: Math.abs(probe.info.cropOffsetLeft ?? 0), top: Math.abs(probe.info.cropOffsetTop ?? 0) };
  } else {
    offset = { left: Math.floor((info.width - target.width) / 2), top: Math.floor((info.height - target.height) / 2) };
  }
  cropped =
    info.width < target.width || info.height < target.height
      ? // Rounding left the frame a pixel short: cover-resize the last pixel instead of extracting.
        sharp(pixels, raw).resize(target.width, target.height, { fit: "cover", kernel: "lanczos3" })
      : sharp(pixels, raw).extract({ left: offset.left, top: offset.top, width: target.width, height: target.height });
  cropped =
    settings.format === "png"
      ? cropped.png({ compressionLevel: settings.pngCompressionLevel ?? OUTPUT_ENCODING.value.pngCompressionLevel, adaptiveFiltering: false })
      : cropped.jpeg({ quality: settings.jpegQuality ?? OUTPUT_ENCODING.value.jpegQuality, chromaSubsampling: "4:4:4" });
  const data = await cropped.toBuffer();
  // Offsets are in the resized frame; scale them back to oriented source pixels.
  const scale = info.width / source.width;
  const width = Math.min(source.width, Math.round(target.width / scale));
  const height = Math.min(source.height, Math.round(target.height / scale));
  const crop: CropBox =
    settings.crop === "center"
      ? coverCropBox(source, target)
      : { left: Math.min(source.width - width, Math.round(offset.left / scale)), top: Math.min(source.height - height, Math.round(offset.top / scale)), width, height };
  return { data, crop, width: target.width, height: target.height, signature };
}
