/**
 * The bucket ai-toolkit trains an image of width x height in at `resolution` (ostris/ai-toolkit@27a03a9
 * toolkit/buckets.py get_bucket_for_image_size): the image's area capped at resolution², each side
 * scaled to it and floored or ceiled onto `divisibility`; of those four the one nearest the target area
 * that stays within resolution² (the first on a tie). Every side is a multiple of `divisibility`.
 */
export function aiToolkitBucket(width: number, height: number, resolution: number, divisibility: number): { width: number; height: number } {
  const total = width * height;
  const maxPixels = resolution * resolution;
  const target = Math.min(total, maxPixels);
  const scaler = Math.sqrt(target / total);
  const wRaw = (width * scaler) / divisibility;
  const hRaw = (height * scaler) / divisibility;
  const candidates: Array<[number, number]> = [
    [Math.floor(wRaw) * divisibility, Math.floor(hRaw) * divisibility],
    [Math.floor(wRaw) * divisibility, Math.ceil(hRaw) * divisibility],
    [Math.ceil(wRaw) * divisibility, Math.floor(hRaw) * divisibility],
    [Math.ceil(wRaw) * divisibility, Math.ceil(hRaw) * divisibility],
  ];
  let capped = candidates.filter(([w, h]) => w > 0 && h > 0 && w * h <= maxPixels);
  if (capped.length === 0) capped = [[Math.max(divisibility, Math.floor(wRaw) * divisibility), Math.max(divisibility, Math.floor(hRaw) * divisibility)]];
  let best = capped[0]!;
  for (const c of capped.slice(1)) if (Math.abs(c[0] * c[1] - target) < Math.abs(best[0] * best[1] - target)) best = c;
  return { width: best[0], height: best[1] };
}
