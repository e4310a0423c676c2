import type { ImageSignature } from "./image-signature.js";
import { DEDUPE_THUMB_SIZE, NEAR_DUPLICATE_ALIGNMENT } from "./prep-knowledge.js";

const GRID = 8;

/**
 * How different two images look where they differ most, in 0..441 (RGB distance): the thumbnails
 * cut into an 8x8 grid of blocks, each block's mean colour compared, the shift every block shares
 * (a brightness or colour tweak) taken out, and the `rank`-th largest block difference kept (rank 2
 * lets one block carry a watermark). A small crop is found by trying windows of either thumbnail.
 * A re-encode scores a few units; the same subject moved, posed, lit or placed differently scores
 * far more in the blocks that changed.
 */
export function pixelDistance(a: ImageSignature, b: ImageSignature, rank = 1): number {
  const wa = windowBlocks(a.thumb);
  const wb = windowBlocks(b.thumb);
  let best = Infinity;
  // windows[0] is the whole frame: each image's crops against the other's whole frame.
  for (let i = 0; i < wa.length && best > 0; i++) best = Math.min(best, residual(wa[i]!, wb[0]!, rank), residual(wb[i]!, wa[0]!, rank));
  return best;
}

/** Block means of every crop window of one thumbnail, computed once per thumbnail (a pair reuses them). */
const windowCache = new Map<string, Float64Array[]>();
function windowBlocks(thumb: string): Float64Array[] {
  let blocks = windowCache.get(thumb);
  if (!blocks) {
    const n = DEDUPE_THUMB_SIZE.value;
    const t = decodeThumb(thumb, n);
    blocks = windows(n).map((w) => blockMeans(t, n, w));
    if (windowCache.size > 4096) windowCache.clear();
    windowCache.set(thumb, blocks);
  }
  return blocks;
}

function decodeThumb(base64: string, n: number): Uint8Array {
  const bytes = Buffer.from(base64, "base64");
  return bytes.length === n * n * 3 ? bytes : new Uint8Array(n * n * 3);
}

interface Window {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The crop windows tried: each kept fraction of width and height, at five places along each axis. */
function windows(n: number): Window[] {
  const out: Window[] = [];
  const { keep, places } = NEAR_DUPLICATE_ALIGNMENT.value;
  for (const kw of keep) {
    for (const kh of keep) {
      const w = n * kw;
      const h = n * kh;
      const xs = kw === 1 ? [0] : Array.from({ length: places }, (_, i) => ((n - w) * i) / (places - 1));
      const ys = kh === 1 ? [0] : Array.from({ length: places }, (_, i) => ((n - h) * i) / (places - 1));
      for (const x of xs) for (const y of ys) out.push({ x, y, w, h });
    }
  }
  return out;
}

/** Mean RGB of each grid block of `window`, sampled bilinearly (4x4 samples a block). */
function blockMeans(t: Uint8Array, n: number, window: Window): Float64Array {
  const out = new Float64Array(GRID * GRID * 3);
  const samples = 4;
  for (let by = 0; by < GRID; by++) {
    for (let bx = 0; bx < GRID; bx++) {
      const o = (by * GRID + bx) * 3;
      for (let sy = 0; sy < samples; sy++) {
        for (let sx = 0; sx < samples; sx++) {
          const x = window.x + ((bx * samples + sx + 0.5) / (GRID * samples)) * window.w - 0.5;
          const y = window.y + ((by * samples + sy + 0.5) / (GRID * samples)) * window.h - 0.5;
          for (let c = 0; c < 3; c++) out[o + c]! += bilinear(t, n, x, y, c);
        }
      }
      for (let c = 0; c < 3; c++) out[o + c]! /= samples * samples;
    }
  }
  return out;
}

function bilinear(t: Uint8Array, n: number, x: number, y: number, c: number): number {
  const cx = Math.min(n - 1, Math.max(0, x));
  const cy = Math.min(n - 1, Math.max(0, y));
  const x0 = Math.floor(cx);
  const y0 = Math.floor(cy);
  const x1 = Math.min(n - 1, x0 + 1);
  const y1 = Math.min(n - 1, y0 + 1);
  const fx = cx - x0;
  const fy = cy - y0;
  const at = (px: number, py: number) => t[(py * n + px) * 3 + c]!;
  return (at(x0, y0) * (1 - fx) + at(x1, y0) * fx) * (1 - fy) + (at(x0, y1) * (1 - fx) + at(x1, y1) * fx) * fy;
}

/**
 * The `rank`-th largest block difference after the best global colour edit is taken out: luma by
 * a least-squares gain and offset (brightness, contrast), chroma by one least-squares complex
 * factor (a hue rotation and a saturation scale), in BT.601 YUV.
 */
function residual(a: Float64Array, b: Float64Array, rank: number): number {
  const blocks = GRID * GRID;
  const ya = new Float64Array(blocks), yb = new Float64Array(blocks);
  const ua = new Float64Array(blocks), ub = new Float64Array(blocks), va = new Float64Array(blocks), vb = new Float64Array(blocks);
  for (let i = 0; i < blocks; i++) {
    [ya[i], ua[i], va[i]] = yuv(a, i);
    [yb[i], ub[i], vb[i]] = yuv(b, i);
  }
  const { gain, offset } = fitAffine(ya, yb);
  // Complex least squares: z = sum(conj(ca) * cb) / sum(|ca|^2), with c = u + i v.
  let re = 0, im = 0, norm = 0;
  for (let i = 0; i < blocks; i++) {
    re += ua[i]! * ub[i]! + va[i]! * vb[i]!;
    im += ua[i]! * vb[i]! - va[i]! * ub[i]!;
    norm += ua[i]! ** 2 + va[i]! ** 2;
  }
  const zr = norm > 1e-9 ? re / norm : 1;
  const zi = norm > 1e-9 ? im / norm : 0;
  const diffs: number[] = [];
  for (let i = 0; i < blocks; i++) {
    const dy = yb[i]! - (gain * ya[i]! + offset);
    const du = ub[i]! - (zr * ua[i]! - zi * va[i]!);
    const dv = vb[i]! - (zr * va[i]! + zi * ua[i]!);
    diffs.push(Math.sqrt(dy * dy + du * du + dv * dv));
  }
  diffs.sort((x, y) => y - x);
  return diffs[Math.min(rank, blocks) - 1]!;
}

function yuv(t: Float64Array, i: number): [number, number, number] {
  const r = t[i * 3]!, g = t[i * 3 + 1]!, b = t[i * 3 + 2]!;
  const y = 0.299 * r + 0.587 * g + 0.114 * b;
  return [y, 0.492 * (b - y), 0.877 * (r - y)];
}

function fitAffine(x: Float64Array, y: Float64Array): { gain: number; offset: number } {
  const n = x.length;
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) (mx += x[i]!), (my += y[i]!);
  mx /= n;
  my /= n;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < n; i++) (sxy += (x[i]! - mx) * (y[i]! - my)), (sxx += (x[i]! - mx) ** 2);
  const gain = sxx > 1e-9 ? sxy / sxx : 1;
  return { gain, offset: my - gain * mx };
}
