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
