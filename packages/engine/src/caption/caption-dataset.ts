import { setTimeout as delay } from "node:timers/promises";
import { extname, join } from "node:path";
import { checkCaption, type CaptionFinding, type CaptionStyle, type CaptionTarget } from "@loraspec/core/captions/caption-rules.js";
import { captionPrompt } from "@loraspec/core/captions/caption-prompts.js";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { listDatasetFiles, type DatasetFiles } from "../dataset/list-dataset-files.js";
import { imageSizeProblem } from "../dataset/read-image-file.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readAtMost } from "../fs/read-small-file.js";
import { CAPTION_RETRY_POLICY, type RetryPolicy } from "./caption-policy.js";
import { captionOverHttp, captionWithWorker, type CaptionItem, type CaptionJob } from "./caption-passes.js";
import type { Captioner } from "./captioner.js";

export interface CaptionDatasetParams {
  /** Folder of images; captions are written beside them (same stem). */
  dir: string;
  captioner: Captioner;
  trigger: string;
  style: CaptionStyle;
  target: CaptionTarget;
  /** The contract's trigger.placement, for the caption check at the end (new captions always start with it). */
  triggerPlacement?: "start" | "anywhere";
  /** The base model reads sentences (T5/LLM encoder): tag captions are flagged. */
  naturalLanguageEncoder?: boolean;
  captionExtension?: string;
  /** Replace captions that already exist (never done without it). */
  overwrite?: boolean;
  /** Requests in flight for HTTP backends (default 4; the worker batches instead). */
  concurrency?: number;
  retry?: RetryPolicy;
  /** Overrides the prompt built from style and target. */
  prompt?: string;
  signal?: AbortSignal;
  /** Injectable for tests (no real waiting). */
  sleep?: (ms: number) => Promise<void>;
  /** How often a progress line is sent while waiting on requests (default CAPTION_HEARTBEAT_MS). */
  heartbeatMs?: number;
}

export interface CaptionSummary {
  dir: string;
  written: string[];
  /** Images that already had a caption (left alone). */
  kept: number;
  failed: Array<{ image: string; code: string; message: string }>;
  retries: number;
  /** Captions where chatter (a preamble, quotes, a closing offer) was removed from the model's answer. */
  cleaned: Array<{ caption: string; removed: string[] }>;
  /** Caption-rule findings on every caption now in the folder. */
  findings: Array<{ caption: string; findings: CaptionFinding[] }>;
}

/**
 * `loraspec caption`: fills in missing captions with a vision-language model. The trigger goes
 * first; a caption that exists is never replaced without `overwrite`; transient failures retry
 * with backoff; one image that keeps failing is reported and the rest carry on.
 */
export async function* captionDataset(params: CaptionDatasetParams): AsyncGenerator<LoraspecEvent, CaptionSummary> {
  const ext = params.captionExtension ?? ".txt";
  const retry = params.retry ?? CAPTION_RETRY_POLICY;
  const sleep = params.sleep ?? ((ms: number) => delay(ms));
  const prompt = params.prompt ?? captionPrompt(params.style, params.target, params.trigger);
  const files = await listDatasetFiles({ dir: params.dir, captionExtension: ext });
  if (files.images.length === 0) throw new LoraspecError("E_DATASET_EMPTY", `no images in ${params.dir}`, { file: params.dir, hint: "run `loraspec prep` first, or pass --dir" });
  const summary: CaptionSummary = { dir: params.dir, written: [], kept: 0, failed: [], retries: 0, cleaned: [], findings: [] };

  const { todo, tooLarge } = await planCaptions(params, files, ext, summary);
  yield { type: "phase", name: "caption", message: `${todo.length} to caption with ${params.captioner.backend}, ${summary.kept} already captioned` };
  for (const { image, message } of tooLarge) {
    summary.failed.push({ image, code: "image-too-large", message });
    yield { type: "warning", code: "image-too-large", message: `${image}: no caption (${message})`, file: image };
  }

  const job: CaptionJob = { params, todo, prompt, summary, retry, sleep, started: Date.now() };
  if (params.captioner.captionMany && todo.length > 0) yield* captionWithWorker(job);
  else yield* captionOverHttp(job);
  await params.captioner.close?.();
  if (params.signal?.aborted) throw new LoraspecError("E_CANCELLED", "captioning cancelled; captions written so far are kept, re-run to fill the rest");

  await checkCaptions(params, files, ext, summary);
  summary.written.sort();
  for (const c of summary.cleaned) {
    yield { type: "warning", code: "caption-cleaned", message: `${c.caption}: removed from the model's answer: ${c.removed.map((r) => JSON.stringify(r)).join(", ")}`, file: c.caption };
  }
  yield { type: "done", result: { ...summary } };
  return summary;
}

/**
 * Which images to caption: those without a caption (or all, with `overwrite`); the ones that have
 * one are counted as kept. Images over FILE_LIMITS.image are left out unread, as check and prep
 * leave them out (the worker is handed paths).
 */
async function planCaptions(
  params: CaptionDatasetParams,
  files: DatasetFiles,
  ext: string,
  summary: CaptionSummary,
): Promise<{ todo: CaptionItem[]; tooLarge: Array<{ image: string; message: string }> }> {
  const todo: CaptionItem[] = [];
  const tooLarge: Array<{ image: string; message: string }> = [];
  for (const image of files.images) {
    const caption = files.sidecars.get(image) ?? captionPathFor(image, ext);
    const existing = await readOptional(join(params.dir, caption));
    if (existing !== undefined && existing.trim() !== "" && !params.overwrite) summary.kept++;
    else {
      const problem = await imageSizeProblem(join(params.dir, image));
      if (problem) tooLarge.push({ image, message: problem.message });
      else todo.push({ image, caption });
    }
  }
  return { todo, tooLarge };
}

/** The caption rules run over every caption now in the folder; findings go into the summary. */
async function checkCaptions(params: CaptionDatasetParams, files: DatasetFiles, ext: string, summary: CaptionSummary): Promise<void> {
  for (const image of files.images) {
    const caption = files.sidecars.get(image) ?? captionPathFor(image, ext);
    const text = await readOptional(join(params.dir, caption));
    const findings = checkCaption({
      caption: text,
      trigger: params.trigger,
      style: params.style,
      target: params.target,
      triggerPlacement: params.triggerPlacement,
      naturalLanguageEncoder: params.naturalLanguageEncoder,
    });
    if (findings.length) summary.findings.push({ caption, findings });
  }
}

/** Same folder, same stem: `a/b.png` -> `a/b.txt`. */
export function captionPathFor(image: string, extension = ".txt"): string {
  return image.slice(0, image.length - extname(image).length) + extension;
}

/** A caption's text, at most FILE_LIMITS.caption bytes of it (check names one larger: caption-too-large). */
async function readOptional(path: string): Promise<string | undefined> {
  const read = await readAtMost(path, FILE_LIMITS.caption.bytes).catch(() => undefined);
  return read?.kind === "file" ? read.bytes.toString("utf8") : undefined;
}
