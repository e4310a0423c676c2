import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isLoraspecError, LoraspecError } from "@loraspec/core/errors.js";
import { initTrainer, recommendContract, type InitChoices, type Recommendation } from "@loraspec/core/contract/recommend-contract.js";
import { renderContractYaml } from "@loraspec/core/contract/render-contract-yaml.js";
import { ContractSchema } from "@loraspec/core/contract/schema.js";
import { parseResolutionFlag, TRAINING_SIDE } from "@loraspec/core/contract/training-resolution.js";
import { INIT_SIDE_FROM_IMAGES, VAE_SCALE } from "@loraspec/core/knowledge/trainer-resolution.js";
import { sideFindings } from "@loraspec/core/lint/resolution-rules.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { getDatasetSize } from "@loraspec/core/knowledge/recipes.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { checkOutputFile } from "../fs/file-operands.js";
import { loadEnglishWords } from "../contract/english-words.js";
import { scanDataset, type DatasetScan } from "../dataset/scan-dataset.js";
import { readStoredPins } from "../dataset/stored-pins.js";
import { SIZE_PROBLEM_CODES, sizeProblems } from "../dataset/probe-image.js";
import { SMALL_IMAGE_RATIO } from "../dataset/prep-knowledge.js";
import { scanShapes } from "../dataset/prep-shapes.js";
import type { ShapeRule } from "@loraspec/core/plan/trainer-buckets.js";
import type { ContractInput } from "@loraspec/core/contract/schema.js";
import { preflightBase } from "./preflight-base.js";

export interface InitProjectParams {
  choices: InitChoices;
  /** Where to write (default ./lora.yaml). */
  path?: string;
  cwd?: string;
  force?: boolean;
}

export interface InitProjectResult extends Recommendation {
  file: string;
  yaml: string;
  /** The images prep will use that the dataset folder held when init ran (undefined: none, or no folder). */
  imageCount?: number;
  /**
   * What prep and check will do with the folder's images by their size, for the contract written (the same scan and
   * size rule): left out (too-small, extreme-aspect) and kept with a warning (upscaled, far-below-resolution,
   * trains-at-own-size). Undefined: no folder scanned.
   */
  sizes?: { skipped: DatasetScan["skipped"]; warnings: DatasetScan["warnings"] };
}

/**
 * Writes lora.yaml with values chosen from the knowledge base, each commented with why and its
 * source. Refuses to overwrite an existing file unless `force` (E_FILE_EXISTS).
 */
export async function initProject({ choices, path: given = "lora.yaml", cwd = process.cwd(), force = false }: InitProjectParams): Promise<InitProjectResult> {
  // -o naming a folder (an existing one, or any path ending in a separator) writes lora.yaml inside it.
  if (given.trim() === "") throw new LoraspecError("E_USAGE", "--out is an empty name", { field: "--out", hint: "Name the contract file, e.g. -o lora.yaml (the default)." });
  const path = /[\\/]$/.test(given) || (existsSync(resolve(cwd, given)) && (await stat(resolve(cwd, given))).isDirectory()) ? join(given, "lora.yaml") : given;
  await checkOutputFile(resolve(cwd, path), "--out", "contract file");
  const file = resolve(cwd, path);
  if (!force && existsSync(file)) {
    throw new LoraspecError("E_FILE_EXISTS", "a contract already exists here", { file: path, hint: "Pass --force to overwrite it, or --out to write elsewhere." });
  }
  const datasetDir = resolve(dirname(file), choices.dataset ?? "./dataset");
  // The folder as check will scan it: at the resolution init writes (check's default when none is written, fal's case),
  // each image judged by the rule prep and check read from the contract init writes (its trainer, dataset.aspect).
  const resolution = parseResolutionFlag(choices.resolution) ?? getBaseModel(choices.base)?.nativeResolution;
  const judge = initSizeRule(choices);
  const scan = choices.imageCount === undefined ? await scanFolder(datasetDir, dirname(file), resolution, resolution ? judge(resolution) : undefined) : undefined;
  const words = await loadEnglishWords();
  // Images smaller than the native side: train at the side they reach (rescanned there), with that reason.
  const own = scan ? sideFromImages(choices, scan, words) : undefined;
  const finalScan = own ? await scanFolder(datasetDir, dirname(file), own.side, judge(own.side)) : scan;
  const usable = finalScan?.images.length;
  const imageCount = choices.imageCount ?? (usable ? usable : undefined);
  // Held to check: init refuses (with check's reasons) rather than write a contract check rejects.
  let rec: Recommendation;
  try {
    rec = recommendContract({ ...choices, imageCount, ...(own ? { resolution: own.side } : {}) }, { words, dataset: finalScan });
  } catch (error) {
    throw scan && resolution ? await explainTooSmall(error, scan, datasetDir, resolution, choices, judge) : error;
  }
  if (own) rec.reasons["dataset.resolution"] = { why: own.why, source: `${INIT_SIDE_FROM_IMAGES.source}; ${rec.reasons["dataset.resolution"]?.source ?? ""}` };
  await holdBasePathToCheck(rec, choices, dirname(file));
  const yaml = renderContractYaml({
    ...rec,
    schemaRef: findSchema(),
    header: [
      `Written by \`loraspec init\` on ${new Date().toISOString().slice(0, 10)}. Each chosen value says why, with its source.`,
      "Check it with `loraspec check`, see the numbers with `loraspec plan`.",
    ],
  });
  await atomicWrite(file, yaml);
  const bySize = (r: { code: string }) => (SIZE_PROBLEM_CODES as readonly string[]).includes(r.code);
  const sizes = scan && { skipped: scan.skipped.filter(bySize), warnings: scan.warnings.filter(bySize) };
  return { ...rec, file, yaml, imageCount, ...(sizes ? { sizes } : {}) };
}

/**
 * Without --resolution, when every usable image is smaller than the base's native side: the largest
 * side (a multiple of 16, down to INIT_SIDE_FROM_IMAGES.minShare of native) that the shortest image
 * reaches and that the contract's trainer takes (init's own check: recommendContract refuses a side
 * check would flag). Undefined: native stays (images big enough, or too far below it: check names them).
 */
function sideFromImages(choices: InitChoices, scan: DatasetScan, words: Awaited<ReturnType<typeof loadEnglishWords>>): { side: number; why: string } | undefined {
  const model = getBaseModel(choices.base);
  if (choices.resolution !== undefined || !model || scan.images.length === 0 || choices.trainer === "fal" || choices.hardware === "fal") return undefined;
  const native = model.nativeResolution;
  const shortest = Math.min(...scan.images.map((i) => Math.min(i.width, i.height)));
  if (shortest >= native) return undefined;
  const floor = Math.ceil((native * INIT_SIDE_FROM_IMAGES.minShare) / TRAINING_SIDE.multiple) * TRAINING_SIDE.multiple;
  for (let side = Math.floor(shortest / TRAINING_SIDE.multiple) * TRAINING_SIDE.multiple; side >= floor; side -= TRAINING_SIDE.multiple) {
    try {
      recommendContract({ ...choices, imageCount: scan.images.length, resolution: side }, { words });
    } catch {
      continue;
    }
    const of = scan.images.length === 1 ? "the image" : `all ${scan.images.length} images`;
    return { side, why: `the shortest side of ${of} is ${shortest} px, below ${model.label}'s native ${native}: trained at ${side} px rather than upscaled (upscaled images train blur); --resolution to choose` };
  }
  return undefined;
}

/**
 * The size rule prep and check apply to the contract init writes, at a training side: check's own (prep-shapes.ts
 * scanShapes, from the contract's trainer and dataset.aspect), read from the contract init chooses for these choices
 * less the image count (which sizes only the steps). Where that choice is refused, undefined (a square): the
 * recommendation after the scan throws the same refusal.
 */
function initSizeRule(choices: InitChoices): (side: number) => ShapeRule | undefined {
  let contract: ContractInput | undefined;
  try {
    contract = recommendContract({ ...choices, imageCount: undefined }).contract;
  } catch {
    return () => undefined;
  }
  const parsed = ContractSchema.parse(contract);
  return (side) => scanShapes(parsed, side);
}

/** The folder as check's scan sees it (undefined: no folder, or no image files in it yet). */
async function scanFolder(dir: string, projectDir: string, resolution: number | undefined, shapes: ShapeRule | undefined): Promise<DatasetScan | undefined> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) return undefined;
  // Only images prep will use: readable, not far below the resolution, not a duplicate of another (check's scan, with its pins).
  const { pins } = await readStoredPins({ projectDir, datasetDir: dir });
  const scan = await scanDataset({ dir, resolution, shapes, pinned: pins.keep, distinct: pins.distinct });
  return scan.candidates > 0 ? scan : undefined;
}

/**
 * A refusal for too few usable images where prep leaves images out as too small for the resolution: says which
 * images and which `--resolution` would keep enough of them (checked by the same scan), or bigger images.
 */
async function explainTooSmall(error: unknown, scan: DatasetScan, dir: string, resolution: number, choices: InitChoices, judge: (side: number) => ShapeRule | undefined): Promise<unknown> {
  const findings = isLoraspecError(error) ? ((error.details as { findings?: Array<{ rule: string }> } | undefined)?.findings ?? []) : [];
  const small = scan.skipped.filter((s) => s.code === "too-small");
  if (!isLoraspecError(error) || small.length === 0 || !findings.some((f) => f.rule === "dataset-below-minimum")) return error;
  const min = getDatasetSize(choices.target, getBaseModel(choices.base)!.family).images.min;
  // fal's trainers take no resolution (they size the images themselves): only bigger images help there.
  const fit = choices.trainer === "fal" || choices.hardware === "fal" ? undefined : await resolutionThatFits(dir, resolution, min, choices, judge);
  const needed = Math.ceil(resolution * SMALL_IMAGE_RATIO.value.skip);
  const why = `${small.length} image(s) are too small for the ${resolution} px training resolution${choices.resolution === undefined ? " (the base's native one)" : ""}: ${small[0]!.file}: ${small[0]!.message}.`;
  const resize = `use images at least ${needed} px on the short side (${resolution} px without upscaling)`;
  return new LoraspecError("E_USAGE", `${error.message} ${why}`, {
    field: choices.resolution === undefined ? "dataset.path" : "dataset.resolution",
    hint: fit
      ? `Pass --resolution ${fit.side} (the largest that keeps ${fit.kept} images${fit.sharp && fit.sharp < fit.side ? `; --resolution ${fit.sharp} trains them without upscaling` : ""}), or ${resize}.`
      : `${resize[0]!.toUpperCase()}${resize.slice(1)}. ${error.hint ?? ""}`.trim(),
    details: error.details,
  });
}

/**
 * The largest training side below `resolution` at which check's scan keeps at least `min` images, and the largest with
 * no upscaling; only sides the trainer init writes takes as asked (check's side rule, lint/resolution-rules.ts). Each
 * side's images are judged by `judge` (the size rule check applies to the contract init writes at that side).
 */
async function resolutionThatFits(dir: string, resolution: number, min: number, choices: InitChoices, judge: (side: number) => ShapeRule | undefined): Promise<{ side: number; kept: number; sharp?: number } | undefined> {
  // Headers only, no size rule: every readable image's size.
  const sizes = (await scanDataset({ dir, decode: false })).images.map((i) => ({ w: i.width, h: i.height }));
  const problems = (side: number) => sizes.map(({ w, h }) => sizeProblems(w, h, side, undefined, judge(side)));
  const keeps = (side: number) => problems(side).filter((p) => !p.some((x) => x.severity === "skip")).length;
  // Kept and not scaled up to the shape it trains at (no skip, no "upscaled").
  const sharpAt = (side: number) => problems(side).filter((p) => !p.some((x) => x.severity === "skip" || x.code === "upscaled")).length;
  const model = getBaseModel(choices.base)!;
  const trainer = initTrainer(choices);
  const takes = (side: number) => sideFindings(trainer, model, "dataset.resolution", side, "square").length === 0;
  const step = VAE_SCALE.px;
  for (let side = Math.floor((resolution - 1) / step) * step; side >= step; side -= step) {
    if (!takes(side) || keeps(side) < min) continue;
    // Confirmed by check's own scan (duplicates are found among the images kept at that size).
    const kept = (await scanDataset({ dir, resolution: side, shapes: judge(side) })).images.length;
    if (kept < min) return undefined;
    let sharp: number | undefined;
    for (let s = side; s >= step; s -= step) if (takes(s) && sharpAt(s) >= min) { sharp = s; break; }
    return { side, kept, sharp };
  }
  return undefined;
}

/**
 * A local `--base-path` is held to check's preflight (preflight-base.ts, one home): a path that does not exist, holds no
 * weights loraspec can read, or holds another architecture is refused naming the flag, before anything is written.
 */
async function holdBasePathToCheck(rec: Recommendation, choices: InitChoices, contractDir: string): Promise<void> {
  if (choices.basePath === undefined || rec.contract.base.path === undefined) return;
  const errors = (await preflightBase({ contract: ContractSchema.parse(rec.contract), contractDir })).filter((f) => f.severity === "error");
  const first = errors[0];
  if (!first) return;
  // Check's wording in init's terms: the flags that set those fields.
  const flag = (text: string) => text.replaceAll("base.path", "--base-path").replaceAll("base.model", "--base");
  throw new LoraspecError(first.rule === "base-weights-missing" ? "E_FILE_NOT_FOUND" : "E_USAGE", flag(first.message), {
    field: "base.path",
    hint: flag(first.fix),
    details: { findings: errors },
  });
}

/** The installed JSON Schema (for editors), found by walking up from this module (src or dist). */
function findSchema(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "schema", "lora-contract.schema.json");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}
