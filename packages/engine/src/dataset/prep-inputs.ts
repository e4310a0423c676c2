import { createHash } from "node:crypto";
import { join, sep } from "node:path";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readAtMost } from "../fs/read-small-file.js";
import { PINS_FILE } from "./dataset-pins.js";
import { mapPool } from "./map-pool.js";

/**
 * Everything `loraspec prep` reads that decides what its prepared folder holds, as one list: prep records it in the
 * manifest (`inputs`) and check builds the same list from what is on disk now with the same function (prepInputs),
 * so a prepared folder is stale exactly when an input changed, and an input prep starts reading is judged by check
 * as soon as it is added here (prepared-stale.ts diffs the lists kind by kind, naming each changed input).
 */

/** Every kind of input; a kind missing here is never judged (prepared-stale.spec has a case per kind). */
export const PREP_INPUT_KINDS = ["image", "caption", "pins", "setting"] as const;
export type PrepInputKind = (typeof PREP_INPUT_KINDS)[number];

/** One input as prep read it: what it is, by name (a dataset-relative path; a setting's name), and a fingerprint of its content. */
export interface PrepInput {
  kind: PrepInputKind;
  name: string;
  /** sha256 (images with their size), or a setting's value as JSON (said in the finding: "resolution 1024 -> 768"). */
  value: string;
}

/**
 * The settings of prep's manifest that the contract decides (dataset.resolution or the base's, dataset.aspect,
 * dataset.crop, the bucket set or trainer's shape rule): a change remakes every output. The others (--format,
 * --background, --max-pixels) are flags of one prep run that check cannot know, so they are not inputs.
 */
export const CONTRACT_SETTINGS = ["resolution", "aspect", "crop", "buckets", "shapes"] as const;

/** What prep read, as it read it. */
export interface PrepInputsRead {
  /** Every image file read (kept, skipped or a duplicate): dataset-relative path, size, sha256 ("" when unread). */
  images: ReadonlyArray<{ file: string; size: number; sha256: string }>;
  /** Every caption sidecar paired with an image (list-dataset-files.ts sidecars), fingerprinted by captionFingerprints. */
  captions: ReadonlyArray<{ file: string; sha256: string }>;
  /** This dataset's keep/drop choices on duplicates, as stored after the run (stored-pins.ts). */
  pins: { keep: readonly string[]; distinct: ReadonlyArray<readonly [string, string]> };
  /** prep's settings (prepSettings); only CONTRACT_SETTINGS are inputs. */
  settings: Readonly<Record<string, unknown>>;
}

/** The list of inputs, in a stable order. Pure. */
export function prepInputs(read: PrepInputsRead): PrepInput[] {
  const pins = {
    keep: [...new Set(read.pins.keep)].sort(),
    distinct: read.pins.distinct.map(([a, b]) => (a < b ? `${a}\0${b}` : `${b}\0${a}`)).sort(),
  };
  const byKind: Record<PrepInputKind, PrepInput[]> = {
    image: read.images.map((i) => ({ kind: "image", name: i.file, value: `${i.size}:${i.sha256}` })),
    caption: read.captions.map((c) => ({ kind: "caption", name: c.file, value: c.sha256 })),
    pins: pins.keep.length || pins.distinct.length ? [{ kind: "pins", name: PINS_FILE.split(sep).join("/"), value: sha256(JSON.stringify(pins)) }] : [],
    setting: CONTRACT_SETTINGS.filter((k) => read.settings[k] !== undefined).map((k) => ({ kind: "setting", name: k, value: JSON.stringify(read.settings[k]) })),
  };
  // By name; settings in CONTRACT_SETTINGS order (as findings list them).
  return PREP_INPUT_KINDS.flatMap((kind) => (kind === "setting" ? byKind[kind] : byKind[kind].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))));
}

/**
 * Each caption sidecar's fingerprint: the sha256 of its bytes, read up to the caption limit (one over it, which prep
 * never copies, is fingerprinted by its size). A sidecar that cannot be read is left out (as prep leaves it out).
 */
export async function captionFingerprints(params: { dir: string; sidecars: ReadonlyMap<string, string>; concurrency?: number }): Promise<Array<{ file: string; sha256: string }>> {
  const out: Array<{ file: string; sha256: string }> = [];
  for await (const got of mapPool([...params.sidecars.values()], params.concurrency ?? 4, async (file) => {
    const read = await readAtMost(join(params.dir, file), FILE_LIMITS.caption.bytes).catch(() => undefined);
    if (read?.kind !== "file") return undefined;
    return { file, sha256: read.truncated ? `over the caption limit: ${read.size} bytes` : sha256(read.bytes) };
  })) {
    if (got) out.push(got);
  }
  return out.sort((a, b) => (a.file < b.file ? -1 : 1));
}

function sha256(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}
