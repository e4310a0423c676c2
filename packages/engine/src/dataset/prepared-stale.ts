import type { DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import type { Finding } from "@loraspec/core/lint/finding.js";
import { nameFew } from "./name-few.js";
import type { PrepManifest } from "./prep-manifest.js";
import type { DatasetScan } from "./scan-dataset.js";
import { CONTRACT_SETTINGS, PREP_INPUT_KINDS, prepInputs, type PrepInput, type PrepInputKind, type PrepInputsRead } from "./prep-inputs.js";

/** How a dataset differs from what its prepared folder was made from; every list empty: up to date. */
export interface PreparedDrift {
  /** Images in the dataset that prep has not seen (new since it ran). */
  added: string[];
  /** Images prep read that are no longer in the dataset (the prepared folder may still train on them). */
  removed: string[];
  /** Images whose bytes changed since prep read them (same name, other content). */
  changed: string[];
  /** Caption sidecars added, removed or edited since prep read them (the prepared folder holds the old text, or none). */
  captions: string[];
  /** The pins file, when the keep/drop choices on duplicates changed since prep applied them. */
  pins: string[];
  /** Settings the contract now asks for that the prepared folder was not made with ("resolution 1024 -> 768"). */
  settings: string[];
}

/** What prep would read now that check cannot see in the dataset's scan. */
export interface WantedPrep {
  /** prep's settings for the contract now (prepare-dataset.ts prepSettingsFor); those the manifest names too are compared. */
  settings?: Readonly<Record<string, unknown>>;
  /** The dataset's stored pins now (stored-pins.ts readStoredPins); undefined: not judged. */
  pins?: PrepInputsRead["pins"];
}

type Recorded = Pick<PrepManifest, "entries"> & Partial<Pick<PrepManifest, "settings" | "inputs">>;

/**
 * Compares what prep read (the manifest's `inputs`, prep-inputs.ts; an older manifest without them: its entries and
 * settings) with the same list made from the disk now: the dataset as check just read it (scan.sources, its caption
 * sidecars), the stored pins and the contract's settings (`wanted`). Kind by kind, so every input prep reads is judged.
 * Pure.
 */
export function preparedDrift(manifest: Recorded, scan: Pick<DatasetScan, "sources"> & Partial<Pick<DatasetScan, "captionFiles">>, wanted: WantedPrep = {}): PreparedDrift {
  const before = recordedInputs(manifest);
  const now = prepInputs({ images: scan.sources, captions: scan.captionFiles ?? [], pins: wanted.pins ?? { keep: [], distinct: [] }, settings: wanted.settings ?? {} });
  // A kind is judged when both sides know it: the manifest recorded it, and the caller read it now.
  const known: Record<PrepInputKind, boolean> = {
    image: true,
    caption: manifest.inputs !== undefined && scan.captionFiles !== undefined,
    pins: manifest.inputs !== undefined && wanted.pins !== undefined,
    setting: wanted.settings !== undefined,
  };
  const drift: PreparedDrift = { added: [], removed: [], changed: [], captions: [], pins: [], settings: [] };
  for (const kind of PREP_INPUT_KINDS) {
    if (!known[kind]) continue;
    const was = new Map(before.filter((i) => i.kind === kind).map((i) => [i.name, i.value]));
    const is = new Map(now.filter((i) => i.kind === kind).map((i) => [i.name, i.value]));
    if (kind === "setting") {
      // Recorded inputs: every setting, one that comes or goes included (Kohya's bucket set -> ai-toolkit's shape rule).
      // An older manifest's settings: only those both name (it may predate a setting).
      const names = manifest.inputs ? [...new Set([...was.keys(), ...is.keys()])] : [...is.keys()].filter((n) => was.has(n));
      drift.settings = CONTRACT_SETTINGS.filter((n) => names.includes(n) && was.get(n) !== is.get(n)).map((n) => describeSetting(n, was.get(n), is.get(n)));
      continue;
    }
    const added = [...is.keys()].filter((n) => !was.has(n)).sort();
    const removed = [...was.keys()].filter((n) => !is.has(n)).sort();
    const changed = [...is].filter(([n, v]) => was.has(n) && !sameValue(kind, was.get(n)!, v)).map(([n]) => n).sort();
    if (kind === "image") Object.assign(drift, { added, removed, changed });
    else drift[kind === "caption" ? "captions" : "pins"] = [...new Set([...added, ...removed, ...changed])].sort();
  }
  return drift;
}

/** What a manifest says prep read: its `inputs`, else (older manifests) its entries and settings. */
function recordedInputs(manifest: Recorded): PrepInput[] {
  if (manifest.inputs) return manifest.inputs.filter((i): i is PrepInput => (PREP_INPUT_KINDS as readonly string[]).includes(i.kind));
  return prepInputs({ images: manifest.entries.map((e) => ({ file: e.source, size: e.size, sha256: e.sha256 })), captions: [], pins: { keep: [], distinct: [] }, settings: manifest.settings ?? {} });
}

/** An image is the same with the same size and content; a hash either side could not read ("") is not a change. */
function sameValue(kind: PrepInputKind, a: string, b: string): boolean {
  if (kind !== "image") return a === b;
  const [sizeA, shaA] = [a.slice(0, a.indexOf(":")), a.slice(a.indexOf(":") + 1)];
  const [sizeB, shaB] = [b.slice(0, b.indexOf(":")), b.slice(b.indexOf(":") + 1)];
  return sizeA === sizeB && (shaA === "" || shaB === "" || shaA === shaB);
}

/** "resolution 1024 -> 768"; a set of buckets is only said to have changed. */
function describeSetting(name: string, before: string | undefined, now: string | undefined): string {
  const plain = (json: string | undefined) => {
    if (json === undefined) return undefined;
    let v: unknown;
    try {
      v = JSON.parse(json);
    } catch {
      return undefined; // a hand-edited manifest's value: hostile input, only said to have changed
    }
    return typeof v === "object" && v !== null ? undefined : String(v);
  };
  const [a, b] = [plain(before), plain(now)];
  return a !== undefined && b !== undefined ? `${name} ${a} -> ${b}` : `${name} changed`;
}

export function isStale(drift: PreparedDrift): boolean {
  return drift.added.length + drift.removed.length + drift.changed.length + drift.captions.length + drift.pins.length + drift.settings.length > 0;
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
    drift.captions.length ? `${drift.captions.length} caption file(s) added, removed or edited (${nameFew(drift.captions)}; the prepared folder holds the captions as they were)` : "",
    drift.pins.length ? `the keep/drop choices on duplicates changed (${drift.pins.join(", ")})` : "",
    drift.settings.length ? `the contract now asks for ${drift.settings.join(", ")}` : "",
  ].filter(Boolean);
  return {
    rule: "dataset-prepared-stale",
    severity: "error",
    field: params.field ?? "dataset.path",
    message: `the run trains on ${params.preparedDir} (${params.preparedCount} image(s)), made by loraspec prep before the dataset or the contract changed: since then ${parts.join(", ")}; the dataset now gives ${params.countedNow} image(s), the prepared folder would train ${params.preparedCount}`,
    fix: `Run \`loraspec prep${params.contractFile ? ` ${params.contractFile}` : ""}\` again: it re-decodes new or changed images (every image when a setting changed), removes the outputs of deleted ones, copies changed captions in (a prepared caption you edited by hand is kept) and applies the keep/drop choices.`,
    source: "ours: project-dataset.ts trainingDatasetDir (a run trains on the dataset's prepared folder once prep made one) and the prepared folder's manifest.json (prep-inputs.ts: every input prep read, images, caption sidecars, the pins and the contract's settings, with a fingerprint of each)",
    // Each input that changed, by its file; a setting by the contract that now asks for another.
    files: [...drift.removed, ...drift.added, ...drift.changed, ...drift.captions, ...drift.pins, ...(drift.settings.length && params.contractFile ? [params.contractFile] : [])],
  };
}
