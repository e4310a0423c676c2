import { createHash } from "node:crypto";
import { realpathSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { basename, isAbsolute, join, relative, resolve, sep } from "node:path";
import { MANIFEST_FILE, readPrepManifest, type PrepManifest } from "./prep-manifest.js";
import { exists } from "../fs/exists.js";

/** The folder prepared folders live in, relative to the project (the contract's folder). */
const STATE_DIR = ".loraspec";
/** Where `prep` writes by default when no other dataset has claimed it; others get `prepared-<slug>-<hash>`. */
export const PREPARED_DIR = join(STATE_DIR, "prepared");

/** A prepared folder and the manifest that ties it to its dataset. */
export interface PreparedFolder {
  dir: string;
  manifest: PrepManifest;
}

/** A prepared folder of the project that is not this dataset's. */
export interface OtherPrepared {
  dir: string;
  /** The dataset its manifest names; undefined when the manifest cannot be read (junk, too large). */
  dataset?: string;
}

export interface PreparedLookup {
  /** This dataset's prepared folder, when prep has written one. */
  own?: PreparedFolder;
  /** The project's other prepared folders (they belong to other datasets and are never used for this one). */
  others: OtherPrepared[];
}

/**
 * Whether a manifest in `preparedDir` was written for `datasetDir`: its recorded absolute path, or its
 * path relative to the prepared folder (so a project moved or copied as a whole still matches), names
 * that folder. Resolved paths are compared (then real paths, for symlinks). Pure of I/O but realpath.
 */
export function preparedFrom(manifest: Pick<PrepManifest, "dataset" | "datasetRelative">, preparedDir: string, datasetDir: string): boolean {
  return namesFolder(manifest, preparedDir, datasetDir);
}

/**
 * Whether a record of a folder (`dataset`: absolute; `datasetRelative`: relative to `baseDir`) names
 * `dir`: the one rule prepared folders and the pins file (dataset-pins.ts) tie themselves to a dataset by.
 */
export function namesFolder(record: { dataset?: string; datasetRelative?: string }, baseDir: string, dir: string): boolean {
  return namedDatasets(record, baseDir).some((named) => samePath(named, dir));
}

/** The dataset a manifest names, as shown to the user: where its relative path points, else its absolute one. */
export function manifestDataset(manifest: Pick<PrepManifest, "dataset" | "datasetRelative">, preparedDir: string): string | undefined {
  return namedDatasets(manifest, preparedDir)[0];
}

/** What a new manifest records as `datasetRelative`; undefined when there is no relative path (another drive). */
export function datasetRelativeTo(baseDir: string, datasetDir: string): string | undefined {
  const rel = relative(resolve(baseDir), resolve(datasetDir));
  return isAbsolute(rel) ? undefined : rel || ".";
}

/**
 * The project's prepared folders (`.loraspec/prepared` and `.loraspec/prepared-*`, each with a
 * manifest), split into this dataset's own and the others. Manifests are hostile input: a junk one
 * makes its folder an "other" of unknown dataset, never an error. With several of this dataset's
 * (made with --out), `.loraspec/prepared` wins, then name order.
 */
export async function findPreparedDir(params: { projectDir: string; datasetDir: string }): Promise<PreparedLookup> {
  const state = join(params.projectDir, STATE_DIR);
  let names: string[];
  try {
    names = (await readdir(state)).filter((n) => n === "prepared" || n.startsWith("prepared-")).sort((a, b) => (a === "prepared" ? -1 : b === "prepared" ? 1 : a < b ? -1 : 1));
  } catch {
    return { others: [] };
  }
  const lookup: PreparedLookup = { others: [] };
  for (const name of names) {
    const dir = join(state, name);
    if (!(await isDir(dir)) || !(await exists(join(dir, MANIFEST_FILE)))) continue;
    const manifest = await readPrepManifest({ path: join(dir, MANIFEST_FILE) });
    if (manifest && preparedFrom(manifest, dir, params.datasetDir)) lookup.own ??= { dir, manifest };
    else lookup.others.push({ dir, dataset: manifest ? manifestDataset(manifest, dir) : undefined });
  }
  return lookup;
}

/**
 * Where `prep` writes a dataset by default: its existing prepared folder, else `.loraspec/prepared`
 * while no manifest claims it, else `.loraspec/prepared-<dataset folder name>-<hash of its path
 * relative to the project>` (stable for the dataset; a folder already claimed gets a number).
 */
export async function choosePreparedDir(params: { projectDir: string; datasetDir: string }): Promise<{ dir: string; existing: boolean; others: OtherPrepared[] }> {
  const lookup = await findPreparedDir(params);
  if (lookup.own) return { dir: lookup.own.dir, existing: true, others: lookup.others };
  const first = join(params.projectDir, PREPARED_DIR);
  if (!(await exists(join(first, MANIFEST_FILE)))) return { dir: first, existing: false, others: lookup.others };
  const rel = relative(resolve(params.projectDir), resolve(params.datasetDir)).split(sep).join("/");
  const base = `${first}-${slug(basename(resolve(params.datasetDir)))}-${createHash("sha256").update(rel).digest("hex").slice(0, 8)}`;
  // Bounded: each step is a folder some other dataset's manifest already claims.
  for (let i = 1; i < 100; i++) {
    const dir = i === 1 ? base : `${base}-${i}`;
    if (!(await exists(join(dir, MANIFEST_FILE)))) return { dir, existing: false, others: lookup.others };
  }
  return { dir: `${base}-${Date.now()}`, existing: false, others: lookup.others };
}

function namedDatasets(record: { dataset?: string; datasetRelative?: string }, baseDir: string): string[] {
  const named: string[] = [];
  const rel = record.datasetRelative;
  if (rel !== undefined && rel !== "" && !isAbsolute(rel) && !rel.includes("\0")) named.push(resolve(baseDir, rel));
  if (record.dataset !== undefined && isAbsolute(record.dataset) && !record.dataset.includes("\0")) named.push(resolve(record.dataset));
  return named;
}

function samePath(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  try {
    return realpathSync.native(a) === realpathSync.native(b);
  } catch {
    return false;
  }
}

/** A folder-name-safe, short form of the dataset folder's name. */
function slug(name: string): string {
  const s = name.toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[-.]+|[-.]+$/g, "").slice(0, 40);
  return s || "dataset";
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
