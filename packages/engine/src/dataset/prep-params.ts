import { stat } from "node:fs/promises";
import sharp from "sharp";
import { LoraspecError } from "@loraspec/core/errors.js";
import { MAX_INPUT_PIXELS } from "./prep-knowledge.js";

/**
 * Prep's settings checked before a file is read or written (prepare-dataset.ts openRun, and the CLI
 * before anything else): a value every image would fail on (a colour sharp cannot parse, a pixel limit
 * below one training-size image) is the caller's mistake, E_USAGE naming the setting, never a "skipped"
 * row per image and never a prepared folder emptied by a run that could not succeed.
 */

/** The settings checked here, as PrepareDatasetParams names them. */
export interface PrepSettingValues {
  resolution: number;
  aspect?: string;
  crop?: string;
  format?: string;
  background?: string;
  maxPixels?: number;
  concurrency?: number;
  nearDuplicate?: { pixelAtZero?: number; phashMax?: number; pixelPerBit?: number; embeddingMin?: number; flatContrast?: number };
}

/** How each setting is named in errors: the library's parameter names; the CLI passes its flags. */
export type PrepSettingNames = Record<"resolution" | "aspect" | "crop" | "format" | "background" | "maxPixels" | "concurrency" | "nearThreshold", string>;

export const PARAM_NAMES: PrepSettingNames = {
  resolution: "resolution",
  aspect: "aspect",
  crop: "crop",
  format: "format",
  background: "background",
  maxPixels: "maxPixels",
  concurrency: "concurrency",
  nearThreshold: "nearDuplicate.pixelAtZero",
};

/** Largest training resolution: a square of it is sharp's default pixel limit (16383², also WebP's largest side). */
export const MAX_RESOLUTION = Math.floor(Math.sqrt(MAX_INPUT_PIXELS.value));
/** Images in flight at once: more only holds more decoded images in memory (each up to ~1 GB at the pixel limit). */
export const MAX_CONCURRENCY = 256;
/** The largest RGB distance between two pixels, sqrt(3 x 255²): the thumbnail distance is never more. */
export const MAX_PIXEL_DISTANCE = 441;

const ENUMS = { aspect: ["square", "buckets"], crop: ["center", "attention"], format: ["png", "jpeg"] } as const;

/** Throws E_USAGE (field: the setting's name) for the first setting no run could succeed with. */
export function checkPrepSettings(values: PrepSettingValues, names: PrepSettingNames = PARAM_NAMES): void {
  const { resolution } = values;
  integerIn(resolution, 1, MAX_RESOLUTION, names.resolution);
  for (const key of ["aspect", "crop", "format"] as const) {
    const value = values[key];
    if (value !== undefined && !(ENUMS[key] as readonly string[]).includes(value)) bad(names[key], `must be one of ${ENUMS[key].join(", ")}, got "${value}"`);
  }
  if (values.background !== undefined) checkColour(values.background, names.background);
  if (values.maxPixels !== undefined) {
    // Below one image of the training size every image but the tiniest is refused: no dataset could pass.
    const least = resolution * resolution;
    if (!Number.isSafeInteger(values.maxPixels) || values.maxPixels < least) {
      bad(names.maxPixels, `must be an integer of at least ${least} (${resolution}x${resolution}, one image at the training resolution), got ${values.maxPixels}`);
    }
  }
  if (values.concurrency !== undefined) integerIn(values.concurrency, 1, MAX_CONCURRENCY, names.concurrency);
  const near = values.nearDuplicate?.pixelAtZero;
  if (near !== undefined && !(Number.isFinite(near) && near >= 0 && near <= MAX_PIXEL_DISTANCE)) bad(names.nearThreshold, `must be a pixel distance from 0 to ${MAX_PIXEL_DISTANCE}, got ${near}`);
}

/** The prepared folder must be a folder or not exist yet: a file there is E_USAGE naming the setting (`--out`), before anything is written. */
export async function checkOutDir(outDir: string, name = "outDir"): Promise<void> {
  const info = await stat(outDir).catch(() => undefined);
  if (info && !info.isDirectory()) bad(name, `${outDir} is a file, not a folder: prep writes its images, captions and manifest into a folder`);
}

/** A colour as sharp's flatten parses it (CSS names, #rgb, #rrggbb, rgb(...)); checked on a pipeline that decodes nothing. */
function checkColour(value: string, name: string): void {
  try {
    if (typeof value !== "string" || value.trim() === "") throw new Error("an empty string");
    sharp({ create: { width: 1, height: 1, channels: 4, background: "#000" } }).flatten({ background: value });
  } catch (error) {
    bad(name, `is not a colour: "${value}" (${String((error as Error).message ?? error).split("\n")[0]}); use a CSS colour name or hex such as #ffffff`);
  }
}

function integerIn(value: number, min: number, max: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) bad(name, `must be an integer from ${min} to ${max}, got ${value}`);
}

function bad(name: string, message: string): never {
  throw new LoraspecError("E_USAGE", `${name} ${message}`, { field: name, hint: "nothing was read or written; fix the value and run prep again" });
}
