import type { ProbedImage } from "./probe-image.js";
import { hammingDistance } from "./probe-image.js";
import { NEAR_DUPLICATE_HAMMING } from "./prep-knowledge.js";

export interface DuplicateCluster {
  kind: "exact" | "near";
  /** The source kept for training. */
  keep: string;
  /** Sources left out because they duplicate `keep`. */
  drop: string[];
  /** Largest Hamming distance inside the cluster (0 for exact). */
  maxDistance: number;
}

export interface DedupeParams {
  images: readonly ProbedImage[];
  /** Hamming threshold over 64 bits; a pair at or below it is a near duplicate. */
  threshold?: number;
  /** Sources the user pinned: kept over any duplicate of theirs. */
  pinned?: readonly string[];
}

/**
 * Groups exact duplicates (same sha256) and near duplicates (dHash within `threshold`), then
 * keeps one per cluster: a pinned one, else the most pixels, then the bigger file, then the
 * first path. Pure and deterministic; O(n^2) hash comparisons, fine for training-set sizes.
 */
export function dedupeImages(params: DedupeParams): DuplicateCluster[] {
  const threshold = params.threshold ?? NEAR_DUPLICATE_HAMMING.value;
  const pinned = new Set(params.pinned ?? []);
  const images = [...params.images].sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  const parent = images.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  const union = (a: number, b: number) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  const exactPairs = new Set<string>();
  for (let i = 0; i < images.length; i++) {
    for (let j = i + 1; j < images.length; j++) {
      const a = images[i]!;
      const b = images[j]!;
      if (a.sha256 === b.sha256) {
        union(i, j);
        exactPairs.add(`${i}:${j}`);
      } else if (a.dhash && b.dhash && hammingDistance(a.dhash, b.dhash) <= threshold) {
        union(i, j);
      }
    }
  }
  const groups = new Map<number, number[]>();
  images.forEach((_, i) => {
    const root = find(i);
    groups.set(root, [...(groups.get(root) ?? []), i]);
  });
  const clusters: DuplicateCluster[] = [];
  for (const members of groups.values()) {
    if (members.length < 2) continue;
    // Ties (exact copies) go to the shorter path, then the first: "a.jpg" over "a-copy.jpg".
    const ranked = [...members].sort(
      (x, y) => rank(images[y]!, pinned) - rank(images[x]!, pinned) || images[x]!.source.length - images[y]!.source.length || x - y,
    );
    const keep = images[ranked[0]!]!;
    const allExact = members.every((m) => images[m]!.sha256 === keep.sha256);
    let maxDistance = 0;
    for (const m of members) {
      const img = images[m]!;
      if (img.dhash && keep.dhash) maxDistance = Math.max(maxDistance, hammingDistance(img.dhash, keep.dhash));
    }
    clusters.push({
      kind: allExact ? "exact" : "near",
      keep: keep.source,
      drop: ranked.slice(1).map((i) => images[i]!.source),
      maxDistance: allExact ? 0 : maxDistance,
    });
  }
  return clusters.sort((a, b) => (a.keep < b.keep ? -1 : 1));
}

function rank(image: ProbedImage, pinned: ReadonlySet<string>): number {
  // Pinned beats everything; then pixels; then bytes (a bigger file of the same pixels is usually less compressed).
  return (pinned.has(image.source) ? 1e15 : 0) + image.width * image.height * 1e3 + Math.min(image.size / 1e6, 999);
}
