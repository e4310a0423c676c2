import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { dedupeImages, type DuplicateCluster } from "./dedupe.js";
import type { ManifestEntry } from "./prep-manifest.js";
import type { PrepareDatasetParams, PrepSummary } from "./prepare-dataset.js";
import type { ProbedImage } from "./probe-image.js";

/**
 * Duplicates in prep (prepare-dataset.ts runs the steps): exact copies dropped before anything is
 * decoded, near duplicates once every kept image has its signature.
 */

/** Each source left out as a duplicate: the source kept in its place, and how alike they are. */
export type DuplicateOf = Map<string, { keep: string; kind: "exact" | "near" }>;

type DedupeChoices = Pick<PrepareDatasetParams, "pinned" | "preferred" | "distinct" | "nearDuplicate" | "embed">;

/** Step 2 of prep: exact copies (same bytes) are dropped before anything is decoded. */
export function dropExactCopies(images: ProbedImage[], choices: DedupeChoices): { duplicateOf: DuplicateOf; unique: ProbedImage[] } {
  const exactClusters = dedupeImages({ images, near: false, pinned: choices.pinned, preferred: choices.preferred, distinct: choices.distinct });
  const duplicateOf: DuplicateOf = new Map();
  for (const cluster of exactClusters) for (const drop of cluster.drop) duplicateOf.set(drop, { keep: cluster.keep, kind: "exact" });
  return { duplicateOf, unique: images.filter((u) => !duplicateOf.has(u.source)) };
}

interface DuplicateParams {
  datasetDir: string;
  /** Where this run's decoder wrote (prep-commit.ts staging): a duplicate decoded in this run leaves its output there. */
  writeDir: string;
  choices: DedupeChoices;
  /** Sources past the header checks (exact copies included). */
  usable: readonly ProbedImage[];
  /** Of those, the ones left after exact dedupe. */
  unique: readonly ProbedImage[];
  /** Sources whose decode failed. */
  failed: ReadonlySet<string>;
  /** Filled in with the near duplicates (and the exact copies settled again). */
  duplicateOf: DuplicateOf;
  /** The planned outputs: a duplicate's entry is removed, with its output when this run wrote it. */
  entries: Map<string, ManifestEntry>;
  /** Sources decoded in this run: a duplicate leaves it. */
  processed: Set<string>;
  summary: Pick<PrepSummary, "duplicates" | "skipped">;
}

/**
 * Step 4 of prep: near duplicates, pair by pair against the image kept (exact copies ride along by
 * sha256). A warning per cluster; each duplicate is listed under skipped and leaves the plan.
 */
export async function* settleDuplicates(params: DuplicateParams): AsyncGenerator<LoraspecEvent, void> {
  const { duplicateOf, summary } = params;
  summary.duplicates = yield* findDuplicates(params);
  for (const cluster of summary.duplicates) {
    for (const drop of cluster.drop) duplicateOf.set(drop, { keep: cluster.keep, kind: cluster.evidence[drop] ? "near" : "exact" });
  }
  for (const cluster of summary.duplicates) {
    yield {
      type: "warning",
      code: cluster.kind === "exact" ? "duplicate" : "near-duplicate",
      message: `${cluster.kind === "exact" ? "exact" : "near"} duplicates: keeping ${cluster.keep}, leaving out ${cluster.drop.join(", ")} (choose with --pin or on the web page's Dataset tab)`,
      file: cluster.keep,
    };
  }
  for (const [drop, { keep, kind }] of [...duplicateOf.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
    summary.skipped.push({ source: drop, code: kind === "exact" ? "duplicate" : "near-duplicate", message: `${kind === "exact" ? "exact copy" : "near duplicate"} of ${keep}` });
    const entry = params.entries.get(drop);
    // A near duplicate decoded in this run leaves no output behind.
    if (entry && params.processed.has(drop)) await rm(join(params.writeDir, entry.output!), { force: true });
    params.entries.delete(drop);
    params.processed.delete(drop);
  }
}

/** The duplicate clusters among the decoded images and their exact copies, confirmed by embeddings when given. */
async function* findDuplicates(params: DuplicateParams): AsyncGenerator<LoraspecEvent, DuplicateCluster[]> {
  const { datasetDir, choices, failed, duplicateOf } = params;
  const hashed = params.unique.filter((u) => !failed.has(u.source) && u.signature);
  yield { type: "phase", name: "dedupe", message: `${hashed.length} images` };
  const exactCopies = params.usable.filter((u) => duplicateOf.has(u.source) && !failed.has(duplicateOf.get(u.source)!.keep));
  const dedupeInput = { images: [...hashed, ...exactCopies], pinned: choices.pinned, preferred: choices.preferred, distinct: choices.distinct, thresholds: choices.nearDuplicate };
  const clusters = dedupeImages(dedupeInput);
  const candidates = clusters.filter((c) => c.kind === "near").flatMap((c) => [c.keep, ...c.drop.filter((d) => c.evidence[d])]);
  if (!choices.embed || !candidates.length) return clusters;
  // Only images in a hash-and-pixel near pair are embedded: usually few, so the model's cost stays small.
  const outcome = await choices.embed(candidates.map((c) => join(datasetDir, c)));
  if (outcome.embeddings) {
    const bySource = new Map(candidates.map((c) => [c, outcome.embeddings.get(join(datasetDir, c))!] as const));
    return dedupeImages({ ...dedupeInput, embeddings: bySource });
  }
  const enable = outcome.hint ? `to turn it on: ${outcome.hint}` : "to turn it on: install the worker (`loraspec setup worker`) and give --embed-model a CLIP model it can load";
  yield {
    type: "warning",
    code: "dedupe-unconfirmed",
    message: `embedding-based duplicate detection is off for this run: near duplicates decided by hash and pixels only (no image embeddings: ${outcome.reason}); ${enable}; --no-embed skips it without this warning`,
  };
  return clusters;
}
