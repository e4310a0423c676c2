import { join } from "node:path";
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
import { processImage, type ProcessSettings } from "./process-image.js";
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
  outDir: string;
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

  async function decodeOne(source: string): Promise<{ source: string; problem: ImageProblem | undefined }> {
    const entry = plan.entries.get(source)!;
    const image = params.images.find((u) => u.source === source)!;
    let bytes: Buffer | undefined;
    try {
      // Bounded like the probe (a file that grew since is image-too-large, unread).
      const got = await readImageFile(join(params.datasetDir, source));
      if (!("bytes" in got)) return { source, problem: got.problem };
      bytes = got.bytes;
      const { crop, format, background, maxPixels } = params.settings;
      const out = await processImage({ bytes, source: image, settings: { target: plan.targets.get(source)!, crop, format, background, maxPixels } });
      await atomicWrite(join(params.outDir, entry.output!), out.data);
      entry.crop = out.crop as CropBox;
      entry.signature = out.signature;
      image.signature = out.signature;
      return { source, problem: undefined };
    } catch (error) {
      // Decoding can fail where the header read fine (truncated files): report, never stop.
      return { source, problem: decodeProblem(bytes ?? new Uint8Array(), image.format, error) };
    }
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
