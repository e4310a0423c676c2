import type { Sourced } from "../knowledge/types.js";

/**
 * A caption tag is read as a trigger when it is in at least this share of its folder's captions.
 * Kohya's `ss_tag_frequency` is a histogram (folder -> tag -> captions holding it, sd-scripts
 * train_util.py adds one per comma-separated tag of each image's caption, repeats not applied);
 * a trigger is written into every caption, so it is the tag whose count is (nearly) the folder's
 * image count. 90% leaves room for a few captions where it was forgotten; natural-language
 * captions, whose comma phrases are each in one caption, never reach it.
 */
export const TRIGGER_TAG_SHARE: Sourced & { value: number } = {
  value: 0.9,
  source: "ours: a trigger is written into every caption of its folder, so its count is (nearly) the folder's image count; ss_tag_frequency and ss_dataset_dirs {n_repeats, img_count} as sd-scripts train_network.py writes them",
  asOf: "2026-12",
};

/** How many of the most frequent tags inspect shows beside the triggers. */
export const SHOWN_TAGS = 5;

export interface CaptionTags {
  /** Tags in >= TRIGGER_TAG_SHARE of some folder's captions, then modelspec.trigger_phrase. */
  triggerWords: string[];
  /** The most frequent tags over all folders, count summed. */
  top: { tag: string; count: number }[];
  /** Distinct tags in ss_tag_frequency. */
  tags: number;
  /** Captions over all folders, where the metadata says for every folder. */
  captions?: number;
  /** Why no trigger could be read from the histogram (not JSON, no caption count, ...). */
  note?: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** A non-negative integer count, or undefined (strings, NaN, negatives, fractions are not counts). */
const countOf = (v: unknown): number | undefined => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : undefined);

function parseJson(raw: string | undefined): unknown {
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

/**
 * Captions per folder: `ss_dataset_dirs` `img_count` (sd-scripts writes it per folder); for a
 * single folder without it, `ss_num_train_images` (images x repeats) over the `<repeats>_` prefix
 * of the folder's name.
 */
function captionCounts(metadata: Record<string, string>, folders: string[]): Map<string, number> {
  const out = new Map<string, number>();
  const dirs = parseJson(metadata.ss_dataset_dirs);
  if (isRecord(dirs)) {
    for (const folder of folders) {
      const info = dirs[folder];
      const n = isRecord(info) ? countOf(info.img_count) : undefined;
      if (n) out.set(folder, n);
    }
  }
  if (folders.length === 1 && !out.has(folders[0]!)) {
    const total = Number(metadata.ss_num_train_images);
    const repeats = Number(/^(\d+)_/.exec(folders[0]!)?.[1]);
    if (Number.isSafeInteger(total) && total > 0 && repeats > 0 && total % repeats === 0) out.set(folders[0]!, total / repeats);
  }
  return out;
}

/** Trigger words and the tag histogram's top, from Kohya's metadata; never throws on what a file says. */
export function captionTagsFrom(metadata: Record<string, string>): CaptionTags {
  const triggers = new Set<string>();
  const totals = new Map<string, number>();
  let note: string | undefined;
  let captions: number | undefined;
  const raw = metadata.ss_tag_frequency;
  if (raw !== undefined) {
    const freq = parseJson(raw);
    if (!isRecord(freq)) {
      note = "ss_tag_frequency is not a JSON object of folders: not read";
    } else {
      const folders = Object.keys(freq).filter((f) => isRecord(freq[f]));
      const counts = captionCounts(metadata, folders);
      let bad = 0;
      for (const folder of folders) {
        const n = counts.get(folder);
        for (const [name, value] of Object.entries(freq[folder] as Record<string, unknown>)) {
          const tag = name.trim();
          const count = countOf(value);
          if (count === undefined) bad++;
          if (!tag || !count) continue;
          totals.set(tag, (totals.get(tag) ?? 0) + count);
          if (n && count >= TRIGGER_TAG_SHARE.value * n) triggers.add(tag);
        }
      }
      if (folders.length && folders.every((f) => counts.has(f))) captions = folders.reduce((s, f) => s + counts.get(f)!, 0);
      const notes: string[] = [];
      if (folders.length > counts.size) notes.push(`the metadata does not say how many captions ${folders.length > 1 ? `${folders.length - counts.size} of ${folders.length} folders` : "the folder"} had (ss_dataset_dirs img_count), so no tag is read as a trigger there`);
      if (bad) notes.push(`${bad} count(s) in ss_tag_frequency are not whole numbers: left out`);
      if (notes.length) note = notes.join("; ");
    }
  }
  const phrase = metadata["modelspec.trigger_phrase"]?.trim();
  if (phrase) triggers.add(phrase);
  const top = [...totals]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, SHOWN_TAGS)
    .map(([tag, count]) => ({ tag, count }));
  return { triggerWords: [...triggers], top, tags: totals.size, captions, note };
}
