import { readFile } from "node:fs/promises";
import { isAbsolute, join, posix, resolve } from "node:path";
import { z } from "zod";
import { LoraspecError } from "@loraspec/core/errors.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { datasetRelativeTo, namesFolder } from "./prepared-folder.js";

/** The user's keep/drop choices for duplicate clusters, per dataset, beside the contract (project-relative). */
export const PINS_FILE = join(".loraspec", "dataset-pins.json");

/** Pins (all datasets together) more than this are refused: a hand-edited or hostile file never makes dedupe quadratic in junk. */
const MAX_ENTRIES = 100_000;
/** Datasets one file may hold pins for (a project holds a few). */
const MAX_DATASETS = 1_000;

/**
 * What the user chose on the Dataset page (or by hand) for one dataset: `keep` sources win over
 * their duplicates (prep's --pin, stored); each `distinct` pair is never called a duplicate of each
 * other (a pairwise override, not a threshold change). Paths are relative to the dataset folder, with `/`.
 */
export interface DatasetPins {
  keep: string[];
  distinct: Array<[string, string]>;
}

export const EMPTY_PINS: DatasetPins = { keep: [], distinct: [] };

/** One dataset's pins in the file, tied to it as prep's manifest is (prepared-folder.ts namesFolder). */
export interface DatasetPinsEntry extends DatasetPins {
  /** The dataset folder, absolute and resolved when written. */
  dataset?: string;
  /** The same folder relative to the project (the folder holding `.loraspec/`): a moved project still matches. */
  datasetRelative?: string;
}

/**
 * The whole file: every dataset's pins (version 2), and `legacy`: the pins of a version 1 file,
 * written before pins named their dataset (stored-pins.ts decides the one dataset they can mean).
 */
export interface PinsFile {
  datasets: DatasetPinsEntry[];
  legacy?: DatasetPins;
}

/** A dataset-relative path that cannot leave the dataset folder: no absolute, no `..`, no `\`, no NUL, normalised. */
const datasetPath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes("\0") && !p.includes("\\") && !isAbsolute(p) && !/^[A-Za-z]:/.test(p), "must be a path relative to the dataset folder")
  .refine((p) => posix.normalize(p) === p && !p.split("/").includes("..") && p !== ".", "must stay inside the dataset folder (no '..', no './', normalised)");

const pinLists = {
  keep: z.array(datasetPath).max(MAX_ENTRIES).default([]),
  distinct: z
    .array(z.tuple([datasetPath, datasetPath]).refine(([a, b]) => a !== b, "a pair names two different images"))
    .max(MAX_ENTRIES)
    .default([]),
};

/** A folder path as the file records it: bounded, NUL-free; only compared, never opened. */
const folderText = z.string().min(1).max(4096).refine((p) => !p.includes("\0"), "no NUL in a path");

const entrySchema = z
  .strictObject({
    dataset: folderText.refine((p) => isAbsolute(p), "must be an absolute path").optional(),
    datasetRelative: folderText.refine((p) => !isAbsolute(p), "must be relative to the project").optional(),
    ...pinLists,
  })
  .refine((e) => e.dataset !== undefined || e.datasetRelative !== undefined, "names its dataset (dataset or datasetRelative)");

const pinsSchema = z.discriminatedUnion("version", [
  z.strictObject({ version: z.literal(1), ...pinLists }),
  z.strictObject({ version: z.literal(2), datasets: z.array(entrySchema).max(MAX_DATASETS).default([]), legacy: z.strictObject(pinLists).optional() }),
]);

/**
 * Reads `.loraspec/dataset-pins.json` of a project as hostile input: a missing file is no pins;
 * anything else that is not exactly the schema (bad JSON, a path outside the dataset folder, an
 * unknown field, too many pins) is E_DATASET_PINS_INVALID naming the file and the field.
 */
export async function readPinsFile(params: { projectDir: string; readFile?: (path: string) => Promise<string> }): Promise<PinsFile> {
  const file = join(params.projectDir, PINS_FILE);
  let text: string;
  try {
    text = await (params.readFile ?? ((p: string) => readFile(p, "utf8")))(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { datasets: [] };
    throw new LoraspecError("E_DATASET_PINS_INVALID", `cannot read ${PINS_FILE}: ${(error as Error).message.split("\n")[0]}`, { file: PINS_FILE });
  }
  return parsePinsFile(text);
}

/** Parses and validates a pins file's text (see readPinsFile); a version 1 file is all `legacy`. */
export function parsePinsFile(text: string): PinsFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw invalid(`${PINS_FILE} is not JSON: ${(error as Error).message}`);
  }
  const parsed = pinsSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map(String).join(".") || "(root)";
    throw invalid(`${PINS_FILE}: ${field}: ${issue.message}`, field);
  }
  const data = parsed.data;
  const file: PinsFile =
    data.version === 1
      ? { datasets: [], legacy: clean(data) }
      : { datasets: data.datasets.map((e) => ({ ...(e.dataset ? { dataset: e.dataset } : {}), ...(e.datasetRelative ? { datasetRelative: e.datasetRelative } : {}), ...clean(e) })), ...(data.legacy ? { legacy: clean(data.legacy) } : {}) };
  const total = [...file.datasets, ...(file.legacy ? [file.legacy] : [])].reduce((n, p) => n + p.keep.length + p.distinct.length, 0);
  if (total > MAX_ENTRIES) throw invalid(`${PINS_FILE}: holds ${total} pins, more than ${MAX_ENTRIES}`, "datasets");
  return file;
}

/** Writes the whole file atomically as version 2 (validated first: what is written can always be read back). */
export async function writePinsFile(params: { projectDir: string; file: PinsFile }): Promise<void> {
  const text = `${JSON.stringify({ version: 2, datasets: params.file.datasets, ...(params.file.legacy ? { legacy: params.file.legacy } : {}) }, null, 2)}\n`;
  parsePinsFile(text);
  await atomicWrite(join(params.projectDir, PINS_FILE), text);
}

/**
 * This dataset's pins: every entry that names it (absolute path, or path relative to the project),
 * merged, and the legacy pins when `legacyApplies` (stored-pins.ts decides). Pure of I/O but realpath.
 */
export function pinsFor(file: PinsFile, at: { projectDir: string; datasetDir: string; legacyApplies: boolean }): DatasetPins {
  const own = file.datasets.filter((e) => namesFolder(e, at.projectDir, at.datasetDir));
  const all = [...own, ...(at.legacyApplies && file.legacy ? [file.legacy] : [])];
  return { keep: [...new Set(all.flatMap((p) => p.keep))].sort(), distinct: dedupePairs(all.flatMap((p) => p.distinct)) };
}

/**
 * The file with this dataset's pins replaced: its entries become one (recorded afresh, absolute and
 * relative, so a moved project's entry is brought up to date), legacy pins that applied to it are
 * folded in (so dropped), and every other dataset's entry and unclaimed legacy pins are kept as they were.
 */
export function withPinsFor(file: PinsFile, at: { projectDir: string; datasetDir: string; legacyApplies: boolean }, pins: DatasetPins): PinsFile {
  const others = file.datasets.filter((e) => !namesFolder(e, at.projectDir, at.datasetDir));
  const rel = datasetRelativeTo(at.projectDir, at.datasetDir);
  const own: DatasetPinsEntry[] = pins.keep.length || pins.distinct.length ? [{ dataset: resolve(at.datasetDir), ...(rel ? { datasetRelative: rel } : {}), keep: pins.keep, distinct: pins.distinct }] : [];
  const legacy = at.legacyApplies ? undefined : file.legacy;
  return { datasets: [...others, ...own], ...(legacy ? { legacy } : {}) };
}

/** One choice made on a duplicate cluster. */
export type PinChoice =
  /** Keep `file` over the other members of its cluster (their own pins are withdrawn, so `file` wins). */
  | { action: "keep"; file: string; cluster: readonly string[] }
  /** The two images are not duplicates: prep keeps both (unless either duplicates another image). */
  | { action: "distinct"; files: readonly [string, string] }
  /** Forget every stored choice: dedupe decides alone again. */
  | { action: "reset" };

/** The pins after one choice; pure. */
export function applyPinChoice(pins: DatasetPins, choice: PinChoice): DatasetPins {
  if (choice.action === "reset") return { keep: [], distinct: [] };
  if (choice.action === "keep") {
    const others = new Set(choice.cluster.filter((f) => f !== choice.file));
    return { keep: [...new Set([...pins.keep.filter((k) => !others.has(k)), choice.file])].sort(), distinct: pins.distinct };
  }
  return { keep: pins.keep, distinct: dedupePairs([...pins.distinct, [choice.files[0], choice.files[1]]]) };
}

/** The pins prep uses: the dataset's stored ones and --pin. */
export function mergePins(stored: DatasetPins | undefined, cliPins: readonly string[] | undefined): DatasetPins {
  return { keep: [...new Set([...(stored?.keep ?? []), ...(cliPins ?? [])])], distinct: stored?.distinct ?? [] };
}

/** A canonical key of an unordered pair (dedupe's lookup). */
export function pairKey(a: string, b: string): string {
  return a < b ? `${a}\0${b}` : `${b}\0${a}`;
}

function dedupePairs(pairs: ReadonlyArray<readonly [string, string]>): Array<[string, string]> {
  const seen = new Map<string, [string, string]>();
  for (const [a, b] of pairs) seen.set(pairKey(a, b), a < b ? [a, b] : [b, a]);
  return [...seen.values()].sort((x, y) => (pairKey(...x) < pairKey(...y) ? -1 : 1));
}

function clean(p: DatasetPins): DatasetPins {
  return { keep: [...new Set(p.keep)], distinct: dedupePairs(p.distinct) };
}

function invalid(message: string, field?: string): LoraspecError {
  return new LoraspecError("E_DATASET_PINS_INVALID", message, {
    file: PINS_FILE,
    ...(field ? { field } : {}),
    hint: "fix it by hand, or delete it to forget every keep/drop choice",
  });
}
