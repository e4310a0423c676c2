import { pairKey } from "./dataset-pins.js";
import type { ImageSignature } from "./image-signature.js";
import { pixelDistance } from "./pixel-distance.js";
import { NEAR_DUPLICATE } from "./prep-knowledge.js";

/** What dedupe needs to know about one image. */
export interface DedupeImage {
  source: string;
  sha256: string;
  width: number;
  height: number;
  size: number;
  signature?: ImageSignature;
}

/** Why two images were called near duplicates: every measure that was taken. */
export interface PairEvidence {
  /** Hamming distance between the 64-bit DCT hashes. */
  phash: number;
  /** pixelDistance of the thumbnails (0..441). */
  pixel: number;
  /** Cosine similarity of the worker's image embeddings, when it was asked. */
  embedding?: number;
}

export interface DuplicateCluster {
  kind: "exact" | "near";
  /** The source kept for training. */
  keep: string;
  /** Sources left out, each one a duplicate of `keep` itself (pairwise, never through a chain). */
  drop: string[];
  /** Per dropped source, why (absent for exact copies). */
  evidence: Record<string, PairEvidence | undefined>;
}

export interface NearDuplicateThresholds {
  /** A pair is a candidate at or below this Hamming distance of 64 bits. */
  phashMax: number;
  /** ... and confirmed at or below pixel distance `pixelAtZero - pixelPerBit * hamming`. */
  pixelAtZero: number;
  pixelPerBit: number;
  /** ... and, when both have an embedding, at or above this cosine similarity. */
  embeddingMin: number;
  /** Below this grey standard deviation an image is flat: only exact copies match it. */
  flatContrast: number;
}

export interface DedupeParams {
  images: readonly DedupeImage[];
  /** Sources the user pinned: kept over any duplicate of theirs. */
  pinned?: readonly string[];
  /** Sources kept over any duplicate of theirs, pinned ones included (prep's --pin over the stored choices). */
  preferred?: readonly string[];
  /** Pairs the user said are not duplicates (dataset-pins.json): never put in one cluster. */
  distinct?: ReadonlyArray<readonly [string, string]>;
  thresholds?: Partial<NearDuplicateThresholds>;
  /** Image embeddings by source (the worker's CLIP/DINOv2), to confirm near pairs. */
  embeddings?: ReadonlyMap<string, ArrayLike<number>>;
  /** false: exact copies only (prep's first pass, before anything is decoded). */
  near?: boolean;
}

/**
 * Exact copies (same sha256) and near duplicates, decided pair by pair against the image kept:
 * images are visited best first (pinned, most pixels, bigger file, shorter path); each one is
 * dropped only if it duplicates an image already kept, else it is kept. So no chain ever links
 * two images that are not themselves duplicates, and no two kept images are duplicates.
 * Pure and deterministic; O(kept x n) comparisons, each cheap unless the hashes are close.
 */
export function dedupeImages(params: DedupeParams): DuplicateCluster[] {
  const t: NearDuplicateThresholds = { ...NEAR_DUPLICATE.value, ...params.thresholds };
  const pinned = new Set(params.pinned ?? []);
  const preferred = new Set(params.preferred ?? []);
  const rankOf = (image: DedupeImage) => rank(image, pinned) + (preferred.has(image.source) ? 2e15 : 0);
  const distinct = new Set((params.distinct ?? []).map(([a, b]) => pairKey(a, b)));
  const order = [...params.images].sort(
    (x, y) => rankOf(y) - rankOf(x) || x.source.length - y.source.length || (x.source < y.source ? -1 : x.source > y.source ? 1 : 0),
  );
  const kept: Array<{ image: DedupeImage; cluster?: DuplicateCluster }> = [];
  for (const image of order) {
    let home: (typeof kept)[number] | undefined;
    let evidence: PairEvidence | undefined;
    for (const k of kept) {
      if (distinct.has(pairKey(k.image.source, image.source))) continue;
      if (k.image.sha256 === image.sha256) {
        home = k;
        evidence = undefined;
        break;
      }
      if (params.near === false || home) continue;
      const e = nearEvidence(k.image, image, t, params.embeddings);
      if (e) (home = k), (evidence = e);
    }
    if (!home) {
      kept.push({ image });
      continue;
    }
    home.cluster ??= { kind: "exact", keep: home.image.source, drop: [], evidence: {} };
    home.cluster.drop.push(image.source);
    home.cluster.evidence[image.source] = evidence;
    if (evidence) home.cluster.kind = "near";
  }
  const clusters = kept.flatMap((k) => (k.cluster ? [k.cluster] : []));
  for (const c of clusters) c.drop.sort();
  return clusters.sort((a, b) => (a.keep < b.keep ? -1 : 1));
}

/** The evidence that `a` and `b` show the same picture, or undefined when they do not. */
export function nearEvidence(a: DedupeImage, b: DedupeImage, t: NearDuplicateThresholds, embeddings?: ReadonlyMap<string, ArrayLike<number>>): PairEvidence | undefined {
  const sa = a.signature;
  const sb = b.signature;
  // A flat image's DCT has no AC energy, so its hash bits are noise: nothing to compare.
  if (!sa || !sb || sa.contrast < t.flatContrast || sb.contrast < t.flatContrast) return undefined;
  const phash = hammingDistance(sa.phash, sb.phash);
  if (phash > t.phashMax) return undefined;
  const pixel = pixelDistance(sa, sb);
  if (pixel > t.pixelAtZero - t.pixelPerBit * phash) return undefined;
  const ea = embeddings?.get(a.source);
  const eb = embeddings?.get(b.source);
  if (ea && eb) {
    const embedding = cosine(ea, eb);
    return embedding >= t.embeddingMin ? { phash, pixel, embedding } : undefined;
  }
  return { phash, pixel };
}

export function hammingDistance(a: string, b: string): number {
  let d = 0;
  for (let i = 0; i < a.length; i += 8) d += popcount32(parseInt(a.slice(i, i + 8), 16) ^ parseInt(b.slice(i, i + 8), 16));
  return d;
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) (dot += a[i]! * b[i]!), (na += a[i]! ** 2), (nb += b[i]! ** 2);
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

function rank(image: DedupeImage, pinned: ReadonlySet<string>): number {
  // Pinned beats everything; then pixels; then bytes (a bigger file of the same pixels is usually less compressed).
  return (pinned.has(image.source) ? 1e15 : 0) + image.width * image.height * 1e3 + Math.min(image.size / 1e6, 999);
}
