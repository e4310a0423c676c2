import { mkdir, rename, rm, rmdir } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { exists } from "../fs/exists.js";
import { STAGING_DIR, type DatasetFiles } from "./list-dataset-files.js";
import { parkCaption, syncCaptions } from "./prep-captions.js";
import type { DuplicateOf } from "./prep-duplicates.js";
import { writePrepManifest, type ManifestEntry, type PrepManifest } from "./prep-manifest.js";
import { datasetRelativeTo } from "./prepared-folder.js";
import type { PrepInput } from "./prep-inputs.js";
import type { ProbedImage } from "./probe-image.js";
import { sourceFields } from "./prep-sources.js";
import type { PrepRun, PrepSummary } from "./prepare-dataset.js";

/**
 * A prep run changes the prepared folder only once it has succeeded (prepare-dataset.ts): new outputs
 * are written into a staging folder inside it, and only when every image is settled and something is
 * left to train on are they moved in, captions synced, old outputs removed and the manifest written.
 * A run that ends in an error (a bad setting, nothing usable, a cancel, an exception) discards the
 * staging folder and leaves the prepared folder, its captions and manifest as they were.
 */

/** Folder inside the prepared folder where a run's outputs wait (hidden: no trainer or scan reads it; list-dataset-files.ts). */
export { STAGING_DIR };

export interface Staging {
  /** Where this run's decoder writes. */
  dir: string;
  /** The first folder this run created on the way (the prepared folder or a parent), removed again on discard. */
  created: string | undefined;
}

/** The staging folder of a run, empty (a crashed run's leftover is ours to clear). */
export async function openStaging(outDir: string): Promise<Staging> {
  const dir = join(outDir, STAGING_DIR);
  await rm(dir, { recursive: true, force: true });
  const created = await mkdir(dir, { recursive: true });
  return { dir, created: created === dir ? undefined : created };
}

/** A failed run: its outputs go, and the folders it created for them (each only while empty). */
export async function discardStaging(outDir: string, staging: Staging): Promise<void> {
  await rm(staging.dir, { recursive: true, force: true });
  if (!staging.created) return;
  const top = resolve(staging.created);
  for (let dir = resolve(outDir); ; dir = dirname(dir)) {
    if (!(await rmdir(dir).then(() => true, () => false))) return;
    if (dir === top || relative(top, dir).startsWith("..")) return;
  }
}

/** What a successful run commits. */
export interface CommitParams {
  run: PrepRun;
  staging: Staging;
  files: DatasetFiles;
  previousBySource: ReadonlyMap<string, ManifestEntry>;
  entries: ReadonlyMap<string, ManifestEntry>;
  /** Sources decoded in this run (their outputs are in staging). */
  processed: ReadonlySet<string>;
  probed: readonly ProbedImage[];
  duplicateOf: DuplicateOf;
  summary: PrepSummary;
  /** Everything the run read (prep-inputs.ts), recorded in the manifest for check. */
  inputs: PrepInput[];
}

/** Steps 6 to 9 of prep, once the run has succeeded: outputs moved in, captions synced, old outputs removed, the manifest written. */
export async function* commitRun(params: CommitParams): AsyncGenerator<LoraspecEvent, void> {
  const { run, staging, entries } = params;
  for (const source of params.processed) {
    const output = entries.get(source)?.output;
    if (!output) continue;
    await mkdir(dirname(join(run.outDir, output)), { recursive: true });
    await rename(join(staging.dir, output), join(run.outDir, output));
  }
  yield* tidyPreparedFolder(params);
  await writeManifest(run, params.probed, entries, params.duplicateOf, params.inputs);
  await rm(staging.dir, { recursive: true, force: true });
}

/**
 * Steps 6 to 8 of prep, once the kept sources (`entries`) are final: captions and outputs of sources
 * no longer prepared are cleared away, and captions follow their image.
 */
async function* tidyPreparedFolder(params: {
  run: PrepRun;
  files: DatasetFiles;
  previousBySource: ReadonlyMap<string, ManifestEntry>;
  entries: ReadonlyMap<string, ManifestEntry>;
  summary: PrepSummary;
}): AsyncGenerator<LoraspecEvent, void> {
  const { run, entries, summary } = params;
  const { outDir, datasetDir, previous } = run;
  // 6. Captions of sources no longer prepared (gone, now skipped or a duplicate) are parked first: a new source may take their name.
  for (const old of previous?.entries ?? []) {
    if (old.caption && !entries.has(old.source) && (await exists(join(outDir, old.caption)))) await parkCaption(outDir, old.caption);
  }

  // 7. Captions follow their image (prep-captions.ts): sidecars copied in, hand edits kept, a caption of changed pixels parked.
  const captions = yield* syncCaptions({ outDir, datasetDir, entries: entries.values(), sidecars: params.files.sidecars, previous: params.previousBySource });
  summary.captionsCopied = captions.copied;
  summary.captionsMissing = captions.missing;
  summary.staleCaptions = captions.stale;

  // 8. Remove outputs whose source is gone, now skipped or now a duplicate (never a file a kept source now writes: a.jpg -> a.png).
  const outputsNow = new Set([...entries.values()].map((e) => e.output!.toLowerCase()));
  for (const old of previous?.entries ?? []) {
    const now = entries.get(old.source);
    if (old.output && (!now || now.output !== old.output) && !outputsNow.has(old.output.toLowerCase())) await rm(join(outDir, old.output), { force: true });
    if (old.output && !now) summary.removed.push(old.source);
  }
}

/** The manifest of this run: every probed source, prepared, a duplicate or skipped. */
async function writeManifest(run: PrepRun, probed: readonly ProbedImage[], entries: ReadonlyMap<string, ManifestEntry>, duplicateOf: DuplicateOf, inputs: PrepInput[]): Promise<void> {
  const manifest: PrepManifest = {
    version: 1,
    dataset: run.datasetDir,
    datasetRelative: datasetRelativeTo(run.outDir, run.datasetDir),
    settings: run.settings,
    updatedAt: new Date().toISOString(),
    entries: probed.map((image) => {
      const entry = entries.get(image.source);
      if (entry) return entry;
      const dup = duplicateOf.get(image.source);
      return {
        ...sourceFields(image),
        status: dup ? "duplicate" : "skipped",
        duplicateOf: dup?.keep,
      } satisfies ManifestEntry;
    }),
    inputs,
  };
  await writePrepManifest({ path: run.manifestPath, manifest });
}

