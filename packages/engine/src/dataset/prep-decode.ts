import { join } from "node:path";
import sharp from "sharp";
import { LoraspecError } from "@loraspec/core/errors.js";
import { ioError } from "../run/io-errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { trainingShape, type ShapeRule } from "@loraspec/core/plan/trainer-buckets.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { exists } from "../fs/exists.js";
import type { CropBox, Size } from "./crop-geometry.js";
import { mapPool } from "./map-pool.js";
import type { ManifestEntry } from "./prep-manifest.js";
import { assignNames, prepProgress, sourceFields } from "./prep-sources.js";
import type { PrepSummary } from "./prepare-dataset.js";
import { decodeProblem, type ImageProblem, type ProbedImage } from "./probe-image.js";
import { processImage, type ProcessedImage, type ProcessSettings } from "./process-image.js";
import { readImageFile } from "./read-image-file.js";

/**
 * The outputs of prep (prepare-dataset.ts runs the steps): what each kept source is written as, and
 * the decode that writes it. One decode per image gives both the output and its dedupe signature.
 */

/** What this run writes for the sources it keeps. */
export interface OutputPlan {
  /** Each kept source's manifest entry; its crop and signature are filled in when it is decoded. */
  entries: Map<string, ManifestEntry>;
  /** The size each source's output is cut to. */
  targets: Map<string, Size>;
  /** Sources whose output on disk is already what this run would write (nothing decoded). */
  upToDate: Set<string>;
}

/**
 * Names, output sizes and manifest entries of the sources kept after exact dedupe (`images`), in a
 * prepared folder that exists. A source's output is up to date when the settings, its bytes, its
 * output name and size are those of its previous entry, it has a signature, and the file is there.
 */
export async function planOutputs(params: {
  images: readonly ProbedImage[];
  previous: ReadonlyMap<string, ManifestEntry>;
  /** The previous manifest was written with these settings. */
  sameSettings: boolean;
  outDir: string;
  resolution: number;
  /** The rule prep shapes images by; undefined: square at `resolution`. */
  rule?: ShapeRule;
  format: "png" | "jpeg";
  captionExt: string;
}): Promise<OutputPlan> {
  const { previous, outDir, resolution, rule } = params;
  // Names: a source keeps its name for life, so its caption stays with it.
  const names = assignNames(params.images.map((k) => k.source), previous);
  const outputExt = params.format === "png" ? ".png" : ".jpg";
  const plan: OutputPlan = { entries: new Map(), targets: new Map(), upToDate: new Set() };
  for (const image of params.images) {
    const name = names.get(image.source)!;
    const bucket = rule ? trainingShape(rule, resolution, image) : undefined;
    const target: Size = bucket ? { width: bucket.width, height: bucket.height } : { width: resolution, height: resolution };
    const old = previous.get(image.source);
    const entry: ManifestEntry = {
      ...sourceFields(image),
      status: "prepared",
      name,
      output: `${name}${outputExt}`,
      outputWidth: target.width,
      outputHeight: target.height,
      caption: `${name}${params.captionExt}`,
      crop: old?.crop,
      sidecarSha256: old?.sidecarSha256,
      captionSha256: old?.captionSha256,
    };
    plan.entries.set(image.source, entry);
    plan.targets.set(image.source, target);
    const sameOutput = old?.output === entry.output && old?.outputWidth === target.width && old?.outputHeight === target.height;
    if (params.sameSettings && old?.status === "prepared" && old.sha256 === image.sha256 && sameOutput && image.signature && (await exists(join(outDir, entry.output!)))) {
      plan.upToDate.add(image.source);
    }
  }
  return plan;
}

export interface Decoder {
  /** Sources decoded and written in this run. */
  processed: Set<string>;
  /** Sources whose decode failed (now skipped; their entries are gone from the plan). */
  failed: Set<string>;
  /**
   * Decodes and writes `sources` (a pool of `concurrency`): one progress event per image, counted
   * across every call, and a warning per failure, which moves that source to the summary's skipped.
   */
  decode(sources: string[]): AsyncGenerator<LoraspecEvent>;
}

/** The decoder of one prep run; its progress counts from the moment it is made. */
export function createDecoder(params: {
  datasetDir: string;
  /** Where outputs are written: the run's staging folder (prep-commit.ts), moved in once the run succeeds. */
  writeDir: string;
  settings: Pick<ProcessSettings, "crop" | "format" | "background" | "maxPixels">;
  plan: OutputPlan;
  /** The probes of the planned sources: a decode fills in the signature, a failure adds its problem. */
  images: readonly ProbedImage[];
  /** Where a failure is recorded: under skipped, its header's warnings withdrawn. */
  summary: Pick<PrepSummary, "warnings" | "skipped">;
  concurrency: number;
  signal?: AbortSignal;
}): Decoder {
  const { plan, summary } = params;
  const processed = new Set<string>();
  const failed = new Set<string>();
  let done = 0;
  let total = 0;
  const started = Date.now();
  const control = settingsControl();

  async function decodeOne(source: string): Promise<{ source: string; problem: ImageProblem | undefined }> {
    const entry = plan.entries.get(source)!;
    const image = params.images.find((u) => u.source === source)!;
    // Bounded like the probe (a file that grew since is image-too-large, unread); never throws.
    const got = await readImageFile(join(params.datasetDir, source));
    if (!("bytes" in got)) return { source, problem: got.problem };
    const { crop, format, background, maxPixels } = params.settings;
    const settings: ProcessSettings = { target: plan.targets.get(source)!, crop, format, background, maxPixels };
    let out: ProcessedImage;
    try {
      out = await processImage({ bytes: got.bytes, source: image, settings });
    } catch (error) {
      // Decoding can fail where the header read fine (truncated files): the file is skipped, the run goes on;
      // unless the same settings fail on a known-good image too, when the file is not to blame.
      await control.check(settings, error);
      return { source, problem: decodeProblem(got.bytes, image.format, error) };
    }
    // A write that fails is about the prepared folder's disk, never the source: it ends the run.
    const path = join(params.writeDir, entry.output!);
    await atomicWrite(path, out.data).catch((error: unknown) => {
      throw outputWriteError(error, path);
    });
    entry.crop = out.crop as CropBox;
    entry.signature = out.signature;
    image.signature = out.signature;
    return { source, problem: undefined };
  }

  async function* decode(sources: string[]): AsyncGenerator<LoraspecEvent> {
    total += sources.length;
    for await (const result of mapPool(sources, params.concurrency, decodeOne, params.signal)) {
      done++;
      if (result.problem) {
        failed.add(result.source);
        plan.entries.delete(result.source);
        const image = params.images.find((u) => u.source === result.source)!;
        image.problems.push(result.problem);
        // Listed once, under skipped: the header's warnings (upscaled) no longer apply to an image left out.
        summary.warnings = summary.warnings.filter((w) => w.source !== result.source);
        summary.skipped.push({ source: result.source, code: result.problem.code, message: result.problem.message });
        yield { type: "warning", code: result.problem.code, message: `${result.source}: ${result.problem.message} (skipped)`, file: result.source };
      } else processed.add(result.source);
      yield prepProgress("prep", done, total, started, result.source);
    }
  }

  return { processed, failed, decode };
}

/**
 * The decode of a known-good image (8x8, half transparent) with a run's settings, made once and only
 * after a file failed: when it fails too, the settings or sharp are at fault, not the file, and the
 * run ends (E_INTERNAL naming the settings) instead of listing every image as damaged.
 */
function settingsControl(): { check(settings: ProcessSettings, fileError: unknown): Promise<void> } {
  let outcome: Promise<unknown> | undefined;
  return {
    async check(settings, fileError) {
      outcome ??= sharp({ create: { width: 8, height: 8, channels: 4, background: { r: 200, g: 40, b: 40, alpha: 0.5 } } })
        .png()
        .toBuffer()
        .then((bytes) => processImage({ bytes, source: { width: 8, height: 8 }, settings }))
        .then(() => undefined, (error: unknown) => error ?? new Error("unknown failure"));
      const failure = await outcome;
      if (failure === undefined) return;
      const said = String((failure as Error).message ?? failure).split("\n")[0];
      const { background, maxPixels, format, crop } = settings;
      throw new LoraspecError("E_INTERNAL", `prep's image settings fail on a known-good image too, so no dataset file is to blame (sharp: ${said}); nothing was written to the prepared folder`, {
        field: "settings",
        hint: "check --background, --max-pixels, --format and --crop, and that sharp is installed intact (`loraspec doctor`)",
        details: { background, maxPixels, format, crop, target: settings.target, fileError: String((fileError as Error)?.message ?? fileError).split("\n")[0] },
        cause: failure,
      });
    },
  };
}

/** A prepared image that cannot be written: a full disk or a folder's permissions, named; the source is not at fault. */
function outputWriteError(error: unknown, path: string): LoraspecError {
  const coded = ioError(error, { path, doing: "writing a prepared image" });
  const said = String((error as Error)?.message ?? error).split("\n")[0];
  return new LoraspecError(coded?.code ?? "E_IO", coded?.message ?? `writing a prepared image: ${said} (${path})`, {
    file: path,
    hint: "free space on that disk or fix the folder's permissions, then run prep again (the prepared folder was left as it was)",
    details: coded?.details,
    cause: error,
  });
}
