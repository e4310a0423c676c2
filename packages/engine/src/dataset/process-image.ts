import sharp from "sharp";
import { coverCropBox, type CropBox, type Size } from "./crop-geometry.js";
import { OUTPUT_ENCODING } from "./prep-knowledge.js";

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
  crop: CropBox;
  width: number;
  height: number;
}

/**
 * One decode, one pipeline: EXIF orientation, alpha flattened, cover-resize with Lanczos3 (JPEG
 * shrink-on-load stays on because nothing is extracted before the resize), crop by centre or
 * sharp's attention strategy, sRGB 8-bit out, metadata stripped.
 */
export async function processImage(params: { bytes: Uint8Array; source: Size; settings: ProcessSettings }): Promise<ProcessedImage> {
  const { bytes, source, settings } = params;
  const position = settings.crop === "attention" ? sharp.strategy.attention : "centre";
  let pipeline = sharp(bytes, { failOn: "error", limitInputPixels: settings.maxPixels })
    .rotate()
    .flatten({ background: settings.background })
    .resize(settings.target.width, settings.target.height, { fit: "cover", position, kernel: "lanczos3" })
    .toColourspace("srgb");
  pipeline =
    settings.format === "png"
      ? pipeline.png({ compressionLevel: settings.pngCompressionLevel ?? OUTPUT_ENCODING.value.pngCompressionLevel, adaptiveFiltering: false })
      : pipeline.jpeg({ quality: settings.jpegQuality ?? OUTPUT_ENCODING.value.jpegQuality, chromaSubsampling: "4:4:4" });
  const { data, info } = await pipeline.toBuffer({ resolveWithObject: true });
  // sharp reports the attention crop's offset in resized pixels (negative, like an extract offset).
  const offset =
    settings.crop === "attention" && (info.cropOffsetLeft !== undefined || info.cropOffsetTop !== undefined)
      ? { left: Math.abs(info.cropOffsetLeft ?? 0), top: Math.abs(info.cropOffsetTop ?? 0) }
      : undefined;
  return { data, crop: coverCropBox(source, settings.target, offset), width: info.width, height: info.height };
}
