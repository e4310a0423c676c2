import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { readConfinedText } from "../../fs/confined-read.js";
import { dirname, join } from "node:path";
import { isLoraspecError } from "@loraspec/core/errors.js";
import type { Finding } from "@loraspec/core/lint/finding.js";
import type { DatasetPins } from "../../dataset/dataset-pins.js";
import { readStoredPins } from "../../dataset/stored-pins.js";
import type { AppContext } from "../app-context.js";
import type { DatasetResponse, ImageRow } from "../api-types.js";
import { SERVER_LIMITS } from "../limits.js";
import { captionFilesFor, listImageFiles, readContractText } from "../project-files.js";
import { hiddenFilesFinding } from "../../dataset/dataset-findings.js";
import { decodeCaption } from "../../dataset/caption-sidecar.js";
import { projectRelative } from "../../fs/safe-path.js";
import type { TrainerId } from "@loraspec/core/contract/ids.js";
import { trainerFolderReading } from "@loraspec/core/knowledge/trainer-folder-reading.js";
import { regFindings } from "../../dataset/reg-findings.js";
import type { DatasetScan } from "../../dataset/scan-dataset.js";

const keyOf = (...parts: unknown[]) => createHash("sha256").update(JSON.stringify(parts)).digest("base64url");

/** The contract as it is on disk, or undefined mid-edit (the dataset can still be browsed). */
export async function contractOnDisk(ctx: AppContext): Promise<unknown> {
  try {
    return ctx.params.parseContract?.({ text: await readContractText(ctx.contractFile, ctx.contractRel), file: ctx.contractRel });
  } catch {
    return undefined;
  }
}

/** The dataset's keep/drop choices as check and prep read them (beside the contract, for this dataset): a bad pins file is a finding and no pins (stored-pins.ts). */
function storedPins(ctx: AppContext, datasetDir: string): Promise<{ pins: DatasetPins; finding?: Finding }> {
  return readStoredPins({ projectDir: dirname(ctx.contractFile), datasetDir });
}

/**
 * The dataset summary lint and plan use: the scan check and prep make (every image probed and
 * decoded, duplicate clusters with the user's pins), so `images` counts what trains, as in
 * `loraspec check`. Cached until a dataset file, the resolution, the caption extension or the pins
 * change (not on every other contract edit: the form lints as the user types).
 */
export async function datasetSummary(ctx: AppContext, contract: unknown, signal?: AbortSignal): Promise<unknown> {
  const scan = ctx.params.scanDataset;
  if (!scan) return undefined;
  try {
    const dir = await ctx.datasetDir();
    const c = contract as { captions?: { extension?: string }; dataset?: { resolution?: number }; base?: { model?: string } } | undefined;
    const { pins } = await storedPins(ctx, dir);
    return await ctx.datasetCache.memo({
      key: keyOf("summary", dir, c?.captions?.extension ?? ".txt", c?.dataset?.resolution ?? null, c?.base?.model ?? null, pins),
      dir,
      compute: async () => (await scan({ dir, contract, signal, pins })).summary,
    });
  } catch (error) {
    if (isLoraspecError(error)) return undefined; // no dataset yet: lint and plan without it
    throw error;
  }
}

/**
 * The regularisation images (dataset.reg_path) as check counts them: the same scan, read as the contract's trainer
 * reads a folder (dataset/reg-findings.ts). Undefined without a reg_path, or when the folder cannot be scanned.
 */
export async function regSummary(ctx: AppContext, contract: unknown, signal?: AbortSignal): Promise<unknown> {
  const scan = ctx.params.scanDataset;
  const c = contract as { captions?: { extension?: string }; dataset?: { resolution?: number; reg_path?: string }; base?: { model?: string }; trainer?: { name?: TrainerId } } | undefined;
  const reg = c?.dataset?.reg_path;
  if (!scan || !reg) return undefined;
  try {
    const dir = await ctx.inside(reg.replace(/^\.\//, "") || ".");
    const trainer = c?.trainer?.name;
    return await ctx.datasetCache.memo({
      key: keyOf("reg", dir, c?.captions?.extension ?? ".txt", c?.dataset?.resolution ?? null, c?.base?.model ?? null, trainer ?? null),
      dir,
      compute: async () => {
        const summary = (await scan({ dir, contract, signal })).summary as DatasetScan | undefined;
        if (!summary) return undefined;
        return { ...summary, images: regFindings(summary, trainer ? trainerFolderReading(trainer) : undefined).images };
      },
    });
  } catch (error) {
    if (isLoraspecError(error)) return undefined; // no reg folder: planned with the dataset's count, as check without a scan
    throw error;
  }
}

/** What lint and plan are made from on the server and the page (core plan/plan-inputs.ts PlanSources): both scans. */
export async function planScans(ctx: AppContext, contract: unknown, signal?: AbortSignal): Promise<{ dataset?: unknown; regDataset?: unknown }> {
  const [dataset, regDataset] = await Promise.all([datasetSummary(ctx, contract, signal), regSummary(ctx, contract, signal)]);
  return { ...(dataset ? { dataset } : {}), ...(regDataset ? { regDataset } : {}) };
}

/** The caption as the page shows it, read confined and bounded; a caption that links outside or is too big is a problem, not text. */
async function readCaption(ctx: AppContext, file: string, own: Array<{ code: string; message: string }>): Promise<string | null> {
  const read = await readConfinedText({ file, confine: ctx.confine, maxBytes: SERVER_LIMITS.captionBytes });
  if (read.kind === "outside") own.push({ code: "caption-outside-project", message: "The caption file links outside the project (or in a loop); it is not read." });
  if (read.kind !== "text") return null;
  if (read.truncated) {
    own.push({ code: "caption-too-large", message: `The caption file is ${read.bytes} bytes; over ${SERVER_LIMITS.captionBytes} it is not a caption.` });
    return null;
  }
  const decoded = decodeCaption(read.raw);
  if (decoded.problem) {
    own.push({ code: decoded.problem.code, message: `The caption file is ${decoded.problem.message}.` });
    return null;
  }
  return decoded.text;
}

/** Every image with its size, caption and problems: what the Dataset page lists. */
export async function datasetListing(ctx: AppContext): Promise<DatasetResponse> {
  const b = await ctx.basics();
  const dir = await ctx.datasetDir();
  const contract = await contractOnDisk(ctx);
  const { pins, finding: pinsFinding } = await storedPins(ctx, dir);
  return ctx.datasetCache.memo({
    key: keyOf("listing", dir, b, contract ?? null, pins, pinsFinding?.message ?? null),
    dir,
    compute: async () => {
      // The hidden files the page leaves out are named as check names them (dataset-hidden-files).
      const { images, hidden } = await listImageFiles(dir);
      const hiddenFinding = hiddenFilesFinding(hidden);
      const captionFiles = await captionFilesFor(dir, images, b.captionExtension);
      let problems: Record<string, Array<{ code: string; message: string }>> = {};
      let summary: DatasetResponse["summary"];
      if (ctx.params.scanDataset) {
        // Not tied to one request's signal: the result is shared by every request that waits for it.
        const scan = await ctx.params.scanDataset({ dir, contract, pins });
        problems = scan.problems;
        // The scan's summary (engine scan-dataset): counts and the duplicate clusters the page shows.
        summary = scan.summary as DatasetResponse["summary"];
      }
      const sharp = (await import("sharp")).default;
      const rows = await Promise.all(
        images.map(async (rel): Promise<ImageRow> => {
          const full = join(dir, rel);
          const captionRel = captionFiles.get(rel)!;
          const own = [...(problems[rel] ?? [])];
          const caption = await readCaption(ctx, join(dir, captionRel), own);
          let width: number | undefined;
          let height: number | undefined;
          try {
            const meta = await sharp(full, { limitInputPixels: SERVER_LIMITS.maxInputPixels }).metadata();
            width = meta.width;
            height = meta.height;
          } catch (error) {
            if (!own.some((p) => p.code === "unreadable")) own.push({ code: "unreadable", message: `Cannot be decoded: ${(error as Error).message}` });
          }
          if (!ctx.params.scanDataset && b.resolution && width && height && Math.min(width, height) < b.resolution && !own.some((p) => p.code === "too_small")) {
            own.push({ code: "too-small", message: `${width}x${height} is below the training resolution ${b.resolution}.` });
          }
          if (caption === null && !own.some((p) => p.code.startsWith("caption-"))) own.push({ code: "no-caption", message: `No ${b.captionExtension} caption.` });
          const size = (await stat(full)).size;
          return { path: rel, bytes: size, width, height, caption, captionFile: captionRel, problems: own };
        }),
      );
      return {
        dir: projectRelative(ctx.projectDir, dir) || ".",
        trigger: b.trigger,
        captionStyle: b.captionStyle,
        captionExtension: b.captionExtension,
        resolution: b.resolution,
        crop: b.crop,
        images: rows,
        hidden,
        ...(hiddenFinding ? { hiddenFinding } : {}),
        summary,
        pins,
        ...(pinsFinding ? { pinsFinding } : {}),
      };
    },
  });
}
