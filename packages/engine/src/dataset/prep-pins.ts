import { isAbsolute, posix, relative, resolve, sep } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { DuplicateCluster } from "./dedupe.js";
import { listDatasetFiles } from "./list-dataset-files.js";
import { nameFew } from "./name-few.js";
import { applyPinChoice, type DatasetPins, type PinChoice } from "./dataset-pins.js";
import { saveDatasetPinChoice } from "./stored-pins.js";

/**
 * `prep --pin`: each pin must name an image of the dataset (a typo is E_USAGE naming it, never a pin
 * that silently matches nothing), and a pin prep used is recorded in `.loraspec/dataset-pins.json`
 * as the page's "Keep this one" is, so `check`, the page and the next plain prep keep the same image.
 */

/**
 * The --pin values as dataset-relative paths with `/`: taken relative to the dataset folder (as the
 * help says), else, when that names nothing, relative to the working folder if that lands inside
 * the dataset (`--pin photos/a.jpg` typed from the project). Reads the listing only.
 */
export async function resolvePinArgs(params: { datasetDir: string; outDir?: string; pins: readonly string[]; captionExtension?: string; cwd?: string }): Promise<string[]> {
  if (!params.pins.length) return [];
  const files = await listDatasetFiles({ dir: params.datasetDir, captionExtension: params.captionExtension, exclude: params.outDir ? [params.outDir] : [] });
  const images = new Set(files.images);
  const resolved: string[] = [];
  for (const pin of params.pins) {
    const found = [asDatasetPath(pin, params.datasetDir), asDatasetPath(resolve(params.cwd ?? process.cwd(), pin), params.datasetDir)].find((p) => p !== undefined && images.has(p));
    if (found === undefined) {
      throw new LoraspecError("E_USAGE", `--pin ${pin}: no image of that name in the dataset ${params.datasetDir}; nothing was read or written`, {
        field: "--pin",
        hint: `give a path relative to the dataset folder${files.images.length ? ` (it holds ${nameFew(files.images)})` : ""}`,
      });
    }
    if (!resolved.includes(found)) resolved.push(found);
  }
  return resolved;
}

/** A path as a dataset-relative `/` path, or undefined when it leaves the dataset folder. */
function asDatasetPath(pin: string, datasetDir: string): string | undefined {
  const rel = isAbsolute(pin) ? relative(resolve(datasetDir), pin) : pin;
  const normal = posix.normalize(rel.split(sep).join("/"));
  if (normal === "." || normal.startsWith("../") || normal === ".." || posix.isAbsolute(normal)) return undefined;
  return normal.replace(/^(\.\/)+/, "");
}

/**
 * After a successful prep: each --pin stored as a "keep" choice for its cluster (the other members'
 * stored keeps withdrawn, as the page does), so check and the next prep decide as this one did.
 */
export async function recordPins(params: { projectDir: string; datasetDir: string; pins: readonly string[]; duplicates: readonly DuplicateCluster[] }): Promise<void> {
  for (const choice of pinChoices(params.pins, params.duplicates)) {
    await saveDatasetPinChoice({ projectDir: params.projectDir, datasetDir: params.datasetDir, choice });
  }
}

/**
 * The dataset's pins as recordPins leaves them: what a prep run records as its pins input (prep-inputs.ts), so the
 * stored file check reads afterwards matches. `pins`: the ones prep applied (stored and --pin merged). Pure.
 */
export function pinsAfterRecord(pins: DatasetPins, cliPins: readonly string[], duplicates: readonly DuplicateCluster[]): DatasetPins {
  return pinChoices(cliPins, duplicates).reduce(applyPinChoice, pins);
}

/** Each --pin as the "keep" choice of its cluster (the page's "Keep this one"). */
function pinChoices(pins: readonly string[], duplicates: readonly DuplicateCluster[]): PinChoice[] {
  return pins.map((file) => {
    const cluster = duplicates.find((c) => c.keep === file || c.drop.includes(file));
    return { action: "keep", file, cluster: cluster ? [cluster.keep, ...cluster.drop] : [file] };
  });
}
