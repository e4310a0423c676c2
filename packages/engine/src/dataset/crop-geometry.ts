import { BUCKET_RULES } from "./prep-knowledge.js";

export interface Size {
  width: number;
  height: number;
}

export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * Aspect buckets of about `resolution`^2 pixels: for each width step, the tallest height that
 * stays within the area, both multiples of the step (kohya's scheme). Pure.
 */
export function aspectBuckets(resolution: number, rules = BUCKET_RULES.value): Size[] {
  const area = resolution * resolution;
  // The side limits are stated for 1024^2 training; they scale with the resolution.
  const scale = resolution / 1024;
  const minSide = Math.max(rules.step, Math.round((rules.minSide * scale) / rules.step) * rules.step);
  const maxSide = Math.max(minSide, Math.round((rules.maxSide * scale) / rules.step) * rules.step);
  const out = new Map<string, Size>();
  for (let width = minSide; width <= maxSide; width += rules.step) {
    const height = Math.min(maxSide, Math.floor(area / width / rules.step) * rules.step);
    if (height < minSide) continue;
    out.set(`${width}x${height}`, { width, height });
    out.set(`${height}x${width}`, { width: height, height: width });
  }
  return [...out.values()].sort((a, b) => a.width / a.height - b.width / b.height);
}

/** The bucket whose aspect ratio is closest to the image's (log distance, so 2:1 and 1:2 are symmetric). */
export function pickBucket(image: Size, buckets: readonly Size[]): Size {
  const target = Math.log(image.width / image.height);
  let best = buckets[0]!;
  let bestDistance = Infinity;
  for (const b of buckets) {
    const d = Math.abs(Math.log(b.width / b.height) - target);
    if (d < bestDistance - 1e-9) {
      best = b;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * The box of the (oriented) source that ends up in a `target`-sized output when it is scaled to
 * cover the target and cropped at `offset` (in resized pixels; centred when omitted).
 */
export function coverCropBox(source: Size, target: Size, offset?: { left: number; top: number }): CropBox {
  const scale = Math.max(target.width / source.width, target.height / source.height);
  const width = Math.min(source.width, Math.round(target.width / scale));
  const height = Math.min(source.height, Math.round(target.height / scale));
  if (!offset) return { left: Math.round((source.width - width) / 2), top: Math.round((source.height - height) / 2), width, height };
  return {
    left: Math.min(source.width - width, Math.round(offset.left / scale)),
    top: Math.min(source.height - height, Math.round(offset.top / scale)),
    width,
    height,
  };
}
