import type { DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import type { Finding } from "@loraspec/core/lint/finding.js";
import { nameFew } from "./name-few.js";
import type { PrepManifest } from "./prep-manifest.js";
import type { DatasetScan } from "./scan-dataset.js";

/** How a dataset differs from what its prepared folder was made from; every list empty: up to date. */
export interface PreparedDrift {
  /** Images in the dataset that prep has not seen (new since it ran). */
  added: string[];
  /** Images prep read that are no longer in the dataset (the prepared folder may still train on them). */
  removed: string[];
  /** Images whose bytes changed since prep read them (same name, other content). */
  changed: string[];
  /** Settings the contract now asks for that the prepared folder was not made with ("resolution 1024 -> 768"). */
  settings: string[];
}

/** What the contract now asks prep for, compared with the manifest's settings (only those both name). */
export interface WantedPrep {
  resolution?: number;
  aspect?: string;
}

/**
 * Compares a prepared folder's manifest (every image prep read: prepared, skipped or a duplicate, by source path,
 * size and sha256) with the dataset as check just read it (scan.sources). Pure.
 */
export function preparedDrift(manifest: Pick<PrepManifest, "entries"> & Partial<Pick<PrepManifest, "settings">>, scan: Pick<DatasetScan, "sources">, wanted: WantedPrep = {}): PreparedDrift {
  const before = new Map(manifest.entries.map((e) => [e.source, e]));
  const now = new Map(scan.sources.map((s) => [s.file, s]));
  const added = [...now.keys()].filter((f) => !before.has(f)).sort();
  const removed = [...before.keys()].filter((f) => !now.has(f)).sort();
  const changed = [...now.values()]
    .filter((s) => {
      const e = before.get(s.file);
      return e !== undefined && (e.size !== s.size || (e.sha256 !== "" && s.sha256 !== "" && e.sha256 !== s.sha256));
    })
    .map((s) => s.file)
    .sort();
  const settings = (["resolution", "aspect"] as const)
    .filter((k) => wanted[k] !== undefined && manifest.settings?.[k] !== undefined && manifest.settings[k] !== wanted[k])
    .map((k) => `${k} ${String(manifest.settings![k])} -> ${String(wanted[k])}`);
  return { added, removed, changed, settings };
}

export function isStale(drift: PreparedDrift): boolean {
  return drift.added.length + drift.removed.length + drift.changed.length + drift.settings.length > 0;
}

/**
 * The images a run handed the prepared folder trains on: the manifest's prepared entries (their outputs), with
 * the sizes prep wrote. Captions come from the dataset's scan where the source is still there (what lint judges).
 */
export function preparedImages(manifest: Pick<PrepManifest, "entries">, scan: Pick<DatasetSummary, "images">): DatasetSummary["images"] {
  const captions = new Map(scan.images.map((i) => [i.file, i.caption]));
  return manifest.entries
    .filter((e) => e.status === "prepared" && e.output)
    .map((e) => ({
      file: e.output!,
      width: e.outputWidth ?? e.width,
      height: e.outputHeight ?? e.height,
      format: (e.output!.split(".").pop() ?? "").toLowerCase(),
      caption: captions.get(e.source) ?? null,
    }));
}

/**
 * `dataset-prepared-stale`, an error: the run trains on the prepared folder (project-dataset.ts trainingDatasetDir),
 * which was made from other images than the dataset holds now, so what check counted is not what would train.
 */
export function preparedStaleFinding(drift: PreparedDrift, params: { preparedDir: string; preparedCount: number; countedNow: number; field?: string; contractFile?: string }): Finding | undefined {
  if (!isStale(drift)) return undefined;
  const parts = [
    drift.removed.length ? `${drift.removed.length} removed (${nameFew(drift.removed)})` : "",
    drift.added.length ? `${drift.added.length} added (${nameFew(drift.added)})` : "",
    drift.changed.length ? `${drift.changed.length} changed (${nameFew(drift.changed)})` : "",
    drift.settings.length ? `the contract now asks for ${drift.settings.join(", ")}` : "",
  ].filter(Boolean);
  return {
    rule: "dataset-prepared-stale",
    severity: "error",
    field: params.field ?? "dataset.path",
    message: `the run trains on ${params.preparedDir} (${params.preparedCount} image(s)), made by loraspec prep before the dataset or the contract changed: since then ${parts.join(", ")}; the dataset now gives ${params.countedNow} image(s), the prepared folder would train ${params.preparedCount}`,
    fix: `Run \`loraspec prep${params.contractFile ? ` ${params.contractFile}` : ""}\` again: it re-decodes new or changed images (every image when a setting changed) and removes the outputs of deleted ones.`,
    source: "ours: project-dataset.ts trainingDatasetDir (a run trains on the dataset's prepared folder once prep made one) and the prepared folder's manifest.json (source, size, sha256 of every image prep read; the resolution and aspect it was made at)",
    files: [...drift.removed, ...drift.added, ...drift.changed],
  };
}
