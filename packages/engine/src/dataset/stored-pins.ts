import { lstat, readdir, readFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { isLoraspecError, type LoraspecError } from "@loraspec/core/errors.js";
import type { Finding } from "@loraspec/core/lint/finding.js";
import { applyPinChoice, PINS_FILE, pinsFor, readPinsFile, withPinsFor, writePinsFile, type DatasetPins, type PinChoice, type PinsFile } from "./dataset-pins.js";
import { namesFolder } from "./prepared-folder.js";

/** The rule id of a pins file that cannot be used (core lint/finding.ts RULES). */
export const PINS_INVALID_RULE = "dataset-pins-invalid";

/** Contract files looked at to decide what an old pins file means: bounded (a hostile folder never makes check slow). */
const CONTRACT_SCAN = { maxFiles: 64, maxBytes: 256 * 1024 } as const;

/** Where the pins of a dataset live: the project (the contract's folder, holding `.loraspec/`) and the dataset folder. */
export interface PinsAt {
  projectDir: string;
  datasetDir: string;
  readFile?: (path: string) => Promise<string>;
}

/** A dataset's pins; `unclaimed` when the file holds old pins (no dataset named) that this dataset cannot claim. */
export interface DatasetPinsRead {
  pins: DatasetPins;
  unclaimed?: { datasets: string[] };
}

/**
 * A dataset's stored pins, strictly (a bad file throws E_DATASET_PINS_INVALID): the entries that name
 * this dataset. Old (version 1) pins name no dataset; they apply to this one only when every contract
 * in the project (`*.yaml`/`*.yml` beside the pins' `.loraspec/`) names this dataset, the one dataset
 * the page can have written them for; else to none (`unclaimed`, a warning for check, prep and the page).
 */
export async function readDatasetPins(params: PinsAt): Promise<DatasetPinsRead> {
  const file = await readPinsFile(params);
  const legacy = await legacyClaim(file, params);
  return { pins: pinsFor(file, { ...params, legacyApplies: legacy.applies }), ...(legacy.unclaimed ? { unclaimed: legacy.unclaimed } : {}) };
}

/**
 * The stored keep/drop choices as check, prep and the page read them: a pins file that cannot be
 * read or is not exactly the schema (E_DATASET_PINS_INVALID) does not stop them; it is one warning
 * naming the file and what is wrong, and dedupe decides alone (no pins) until it is fixed or deleted.
 * Old pins this dataset cannot claim are a warning too (and the dataset's own pins still apply).
 */
export async function readStoredPins(params: PinsAt): Promise<{ pins: DatasetPins; finding?: Finding }> {
  try {
    const read = await readDatasetPins(params);
    return { pins: read.pins, ...(read.unclaimed ? { finding: unclaimedFinding(params, read.unclaimed.datasets) } : {}) };
  } catch (error) {
    if (!isLoraspecError(error) || error.code !== "E_DATASET_PINS_INVALID") throw error;
    return { pins: { keep: [], distinct: [] }, finding: pinsFinding(error) };
  }
}

/**
 * One choice on the page, for one dataset: applied to that dataset's stored pins and written back with
 * every other dataset's pins (and unclaimed old ones) as they were. A bad file is refused (a hand edit is
 * never overwritten) except by "forget", which cannot keep what it cannot read. Returns the dataset's pins.
 */
export async function saveDatasetPinChoice(params: PinsAt & { choice: PinChoice }): Promise<DatasetPins> {
  let file: PinsFile;
  try {
    file = await readPinsFile(params);
  } catch (error) {
    if (params.choice.action !== "reset" || !isLoraspecError(error)) throw error;
    file = { datasets: [] };
  }
  const legacyApplies = (await legacyClaim(file, params)).applies;
  const at = { projectDir: params.projectDir, datasetDir: params.datasetDir, legacyApplies };
  const pins = applyPinChoice(params.choice.action === "reset" ? { keep: [], distinct: [] } : pinsFor(file, at), params.choice);
  await writePinsFile({ projectDir: params.projectDir, file: withPinsFor(file, at, pins) });
  return pins;
}

/** Whether the old pins (if any) belong to this dataset; the datasets the project's contracts name when they do not. */
async function legacyClaim(file: PinsFile, at: PinsAt): Promise<{ applies: boolean; unclaimed?: { datasets: string[] } }> {
  if (!file.legacy || (!file.legacy.keep.length && !file.legacy.distinct.length)) return { applies: false };
  const named = await contractDatasets(at.projectDir);
  if (named.length > 0 && named.every((dir) => namesFolder({ dataset: dir }, at.projectDir, at.datasetDir))) return { applies: true };
  return { applies: false, unclaimed: { datasets: [...new Set(named.map((d) => relative(resolve(at.projectDir), d) || "."))] } };
}

/**
 * The dataset folders the project's contracts name (`dataset.path` of each `*.yaml`/`*.yml` in the
 * project folder that parses as a mapping with `base` and `dataset.path`), resolved. Contracts are
 * hostile input here too: bounded in number and size; one that does not parse is not a contract.
 */
export async function contractDatasets(projectDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir(projectDir)).filter((n) => /\.ya?ml$/i.test(n)).sort().slice(0, CONTRACT_SCAN.maxFiles);
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const name of names) {
    const path = join(projectDir, name);
    try {
      const info = await lstat(path);
      if (!info.isFile() || info.size > CONTRACT_SCAN.maxBytes) continue;
      const doc = parseYaml(await readFile(path, "utf8"), { maxAliasCount: 100 }) as { base?: unknown; dataset?: { path?: unknown } } | null;
      const dataset = doc && typeof doc === "object" && doc.base && typeof doc.base === "object" && doc.dataset && typeof doc.dataset === "object" ? doc.dataset.path : undefined;
      if (typeof dataset === "string" && dataset && !dataset.includes("\0")) found.push(resolve(projectDir, dataset));
    } catch {
      // not a contract
    }
  }
  return found;
}

function pinsFinding(error: LoraspecError): Finding {
  return {
    rule: PINS_INVALID_RULE,
    severity: "warning",
    message: `${error.message} (E_DATASET_PINS_INVALID): your keep/drop choices on duplicates are not applied; prep keeps one image of each cluster by itself.`,
    fix: `Fix ${PINS_FILE} by hand, or delete it (or 'Forget my choices' on the Dataset page) and choose again.`,
    source: "ours: the stored choices are hostile input, validated (engine dataset/dataset-pins.ts)",
  };
}

function unclaimedFinding(at: PinsAt, datasets: string[]): Finding {
  const here = relative(resolve(at.projectDir), resolve(at.datasetDir)) || ".";
  const which = datasets.length ? `this project's contracts name ${datasets.length > 1 ? "several datasets" : "another dataset"} (${datasets.join(", ")})` : "no contract here names a dataset";
  return {
    rule: PINS_INVALID_RULE,
    severity: "warning",
    message: `${PINS_FILE} holds keep/drop choices written before they named their dataset, and ${which}: they are not applied to '${here}' (nor to any other dataset); its own choices still are.`,
    fix: `Choose again on the Dataset page, or move the file's "legacy" (or version 1 "keep"/"distinct") pins by hand into a "datasets" entry with "datasetRelative": "<the dataset folder, relative to the project>" (version 2).`,
    source: "ours: pins belong to the dataset they were made for (engine dataset/stored-pins.ts)",
  };
}
