import { readFile } from "node:fs/promises";
import { isAbsolute, join, posix } from "node:path";
import { z } from "zod";
import { LoraspecError } from "@loraspec/core/errors.js";
import { atomicWrite } from "../fs/atomic-write.js";

/** The user's keep/drop choices for duplicate clusters, beside the prepared folder (project-relative). */
export const PINS_FILE = join(".loraspec", "dataset-pins.json");

/** Pins more than this are refused: a hand-edited or hostile file never makes dedupe quadratic in junk. */
const MAX_ENTRIES = 100_000;

/**
 * What the user chose on the Dataset page (or by hand): `keep` sources win over their duplicates
 * (prep's --pin, stored); each `distinct` pair is never called a duplicate of each other (a
 * pairwise override, not a threshold change). Paths are relative to the dataset folder, with `/`.
 */
export interface DatasetPins {
  keep: string[];
  distinct: Array<[string, string]>;
}

export const EMPTY_PINS: DatasetPins = { keep: [], distinct: [] };

/** A dataset-relative path that cannot leave the dataset folder: no absolute, no `..`, no `\`, no NUL, normalised. */
const datasetPath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes("\0") && !p.includes("\\") && !isAbsolute(p) && !/^[A-Za-z]:/.test(p), "must be a path relative to the dataset folder")
  .refine((p) => posix.normalize(p) === p && !p.split("/").includes("..") && p !== ".", "must stay inside the dataset folder (no '..', no './', normalised)");

const pinsSchema = z.strictObject({
  version: z.literal(1),
  keep: z.array(datasetPath).max(MAX_ENTRIES).default([]),
  distinct: z
    .array(z.tuple([datasetPath, datasetPath]).refine(([a, b]) => a !== b, "a pair names two different images"))
    .max(MAX_ENTRIES)
    .default([]),
});

/**
 * Reads `.loraspec/dataset-pins.json` of a project as hostile input: a missing file is no pins;
 * anything else that is not exactly the schema (bad JSON, a path outside the dataset folder, an
 * unknown field) is E_DATASET_PINS_INVALID naming the file and the field.
 */
export async function readDatasetPins(params: { projectDir: string; readFile?: (path: string) => Promise<string> }): Promise<DatasetPins> {
  const file = join(params.projectDir, PINS_FILE);
  let text: string;
  try {
    text = await (params.readFile ?? ((p: string) => readFile(p, "utf8")))(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { keep: [], distinct: [] };
    throw new LoraspecError("E_DATASET_PINS_INVALID", `cannot read ${PINS_FILE}: ${(error as Error).message.split("\n")[0]}`, { file: PINS_FILE });
  }
  return parseDatasetPins(text);
}

/** Parses and validates a pins file's text (see readDatasetPins). */
export function parseDatasetPins(text: string): DatasetPins {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new LoraspecError("E_DATASET_PINS_INVALID", `${PINS_FILE} is not JSON: ${(error as Error).message}`, {
      file: PINS_FILE,
      hint: "fix it by hand, or delete it to forget every keep/drop choice",
    });
  }
  const parsed = pinsSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map(String).join(".") || "(root)";
    throw new LoraspecError("E_DATASET_PINS_INVALID", `${PINS_FILE}: ${field}: ${issue.message}`, {
      file: PINS_FILE,
      field,
      hint: "fix it by hand, or delete it to forget every keep/drop choice",
    });
  }
  return { keep: [...new Set(parsed.data.keep)], distinct: dedupePairs(parsed.data.distinct) };
}

/** Writes the pins atomically (validated first: what is written can always be read back). */
export async function writeDatasetPins(params: { projectDir: string; pins: DatasetPins }): Promise<void> {
  const text = `${JSON.stringify({ version: 1, keep: params.pins.keep, distinct: params.pins.distinct }, null, 2)}\n`;
  const pins = parseDatasetPins(text);
  await atomicWrite(join(params.projectDir, PINS_FILE), `${JSON.stringify({ version: 1, ...pins }, null, 2)}\n`);
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

/** The pins prep uses: the stored ones (when prep works on the contract's dataset folder) and --pin. */
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
