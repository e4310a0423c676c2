import { FLATTEN_BACKGROUND } from "@loraspec/core/knowledge/image-formats.js";
import { availableParallelism } from "node:os";
import { extname, join } from "node:path";
import sharp from "sharp";
import { checkCaption, type CaptionFinding, type CaptionStyle, type CaptionTarget } from "@loraspec/core/captions/caption-rules.js";
import { captionPrompt, cleanCaption } from "@loraspec/core/captions/caption-prompts.js";
import { fixCaption } from "@loraspec/core/captions/caption-rules.js";
import { LoraspecError, isLoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { listDatasetFiles } from "../dataset/list-dataset-files.js";
import { mapPool } from "../dataset/map-pool.js";
import { imageSizeProblem, readImageFile } from "../dataset/read-image-file.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readAtMost } from "../fs/read-small-file.js";
import { CAPTION_HEARTBEAT_MS, CAPTION_IMAGE_LONG_SIDE, CAPTION_RETRY_POLICY, CAPTION_TIMEOUT_RETRIES, retryDelayMs, type RetryPolicy } from "./caption-policy.js";
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
  const sleep = params.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const prompt = params.prompt ?? captionPrompt(params.style, params.target, params.trigger);
  const files = await listDatasetFiles({ dir: params.dir, captionExtension: ext });
  if (files.images.length === 0) throw new LoraspecError("E_DATASET_EMPTY", `no images in ${params.dir}`, { file: params.dir, hint: "run `loraspec prep` first, or pass --dir" });
  const summary: CaptionSummary = { dir: params.dir, written: [], kept: 0, failed: [], retries: 0, cleaned: [], findings: [] };

  const todo: Array<{ image: string; caption: string }> = [];
  // Images over FILE_LIMITS.image are left out unread, as check and prep leave them out (the worker is handed paths).
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
  yield { type: "phase", name: "caption", message: `${todo.length} to caption with ${params.captioner.backend}, ${summary.kept} already captioned` };
  for (const { image, message } of tooLarge) {
    summary.failed.push({ image, code: "image-too-large", message });
    yield { type: "warning", code: "image-too-large", message: `${image}: no caption (${message})`, file: image };
  }

  const write = async (item: { image: string; caption: string }, raw: string) => {
    const { text: clean, removed } = cleanCaption(raw, params.style);
    const text = params.trigger ? fixCaption(clean, params.trigger, params.style) : clean;
    await atomicWrite(join(params.dir, item.caption), `${text}\n`);
    summary.written.push(item.caption);
    if (removed.length) summary.cleaned.push({ caption: item.caption, removed });
  };
  const fail = (item: { image: string }, error: unknown): LoraspecEvent => {
    const code = isLoraspecError(error) ? error.code : "E_INTERNAL";
    const message = (error as Error).message ?? String(error);
    summary.failed.push({ image: item.image, code, message });
    return { type: "warning", code, message: `${item.image}: no caption (${message})`, file: item.image };
  };

  const started = Date.now();
  let done = 0;
  if (params.captioner.captionMany && todo.length > 0) {
    // The local worker loads the model once and batches; progress comes back as it goes.
    // The worker reports progress through a callback while one promise runs: relay it as events.
    const reported: number[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    const pending = params.captioner
      .captionMany({
        images: todo.map((t) => ({ path: join(params.dir, t.image), name: t.image })),
        prompt,
        signal: params.signal,
        onProgress: (current) => {
          reported.push(current);
          wake?.();
        },
      })
      .finally(() => {
        finished = true;
        wake?.();
      });
    pending.catch(() => {}); // awaited below; this only keeps an early rejection from being unhandled
    while (!finished || reported.length) {
      const current = reported.shift();
      if (current === undefined) await new Promise<void>((resolve) => (wake = resolve));
      else if (current < todo.length) yield progressEvent(current, todo.length, started, "captioning");
    }
    const results = await pending;
    for (const item of todo) {
      const result = results.get(join(params.dir, item.image));
      if (typeof result === "string") await write(item, result);
      else yield fail(item, result ?? new LoraspecError("E_WORKER_PROTOCOL", "the worker returned no caption for this image"));
      done++;
    }
    yield progressEvent(todo.length, todo.length, started, "done");
  } else {
    const concurrency = Math.max(1, params.concurrency ?? Math.min(4, availableParallelism() * 2));
    for await (const outcome of withHeartbeat(mapPool(
      todo,
      concurrency,
      async (item) => {
        try {
          const image = await captionImage(join(params.dir, item.image), item.image);
          let timeouts = 0;
          for (let attempt = 0; ; attempt++) {
            if (params.signal?.aborted) throw new LoraspecError("E_CANCELLED", "captioning cancelled");
            try {
              const raw = await params.captioner.caption({ image, mimeType: "image/jpeg", prompt, name: item.image, signal: params.signal });
              await write(item, raw);
              return { item, error: undefined };
            } catch (error) {
              // Only errors that say so are retried (rate limits, 5xx, dropped connections); a bug or a 4xx is not.
              const retryable = isLoraspecError(error) && error.retryable;
              const timedOut = isLoraspecError(error) && error.code === "E_TIMEOUT" && ++timeouts > CAPTION_TIMEOUT_RETRIES;
              if (!retryable || timedOut || attempt >= retry.maxRetries || params.signal?.aborted) throw error;
              summary.retries++;
              await sleep(retryDelayMs(retry, attempt));
            }
          }
        } catch (error) {
          return { item, error };
        }
      },
      params.signal,
    ), params.heartbeatMs ?? CAPTION_HEARTBEAT_MS)) {
      if (outcome === HEARTBEAT) {
        // Nothing finished for a while: say so, so a slow or hung server is visible.
        yield progressEvent(done, todo.length, started, `waiting on ${params.captioner.backend} (${Math.round((Date.now() - started) / 1000)} s)`);
        continue;
      }
      done++;
      // A wrong key fails every image the same way: stop at once rather than report it N times.
      if (isLoraspecError(outcome.error) && outcome.error.code === "E_REMOTE_AUTH") throw outcome.error;
      if (outcome.error !== undefined) yield fail(outcome.item, outcome.error);
      yield progressEvent(done, todo.length, started, outcome.item.image);
    }
  }
  await params.captioner.close?.();
  if (params.signal?.aborted) throw new LoraspecError("E_CANCELLED", "captioning cancelled; captions written so far are kept, re-run to fill the rest");

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
  summary.written.sort();
  for (const c of summary.cleaned) {
    yield { type: "warning", code: "caption-cleaned", message: `${c.caption}: removed from the model's answer: ${c.removed.map((r) => JSON.stringify(r)).join(", ")}`, file: c.caption };
  }
  yield { type: "done", result: { ...summary } };
  return summary;
}

/** Same folder, same stem: `a/b.png` -> `a/b.txt`. */
export function captionPathFor(image: string, extension = ".txt"): string {
  return image.slice(0, image.length - extname(image).length) + extension;
}

/** The image as a VLM should see it: upright, sRGB JPEG, long side capped (less upload, same caption). */
async function captionImage(path: string, name: string): Promise<Buffer> {
  const got = await readImageFile(path);
  if (!("bytes" in got)) throw new LoraspecError("E_IMAGE_UNREADABLE", `cannot read ${name}: ${got.problem.message}`, { file: name, retryable: false, hint: "re-export or remove the file (`loraspec prep` skips it with its reason)" });
  try {
    return await sharp(got.bytes, { failOn: "error" })
      .rotate()
      .flatten({ background: FLATTEN_BACKGROUND.value })
      .resize(CAPTION_IMAGE_LONG_SIDE, CAPTION_IMAGE_LONG_SIDE, { fit: "inside", withoutEnlargement: true })
      .toColourspace("srgb")
      .jpeg({ quality: 90 })
      .toBuffer();
  } catch (error) {
    throw new LoraspecError("E_IMAGE_UNREADABLE", `cannot decode ${name}: ${String((error as Error).message ?? error).split("\n")[0]}`, {
      file: name,
      retryable: false,
      hint: "re-export or remove the file (`loraspec prep` skips it with its reason)",
    });
  }
}

const HEARTBEAT = Symbol("heartbeat");

/** Passes `source` through, yielding HEARTBEAT whenever `ms` pass with nothing from it. */
async function* withHeartbeat<T>(source: AsyncGenerator<T>, ms: number): AsyncGenerator<T | typeof HEARTBEAT> {
  let next = source.next();
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const tick = new Promise<typeof HEARTBEAT>((resolve) => (timer = setTimeout(() => resolve(HEARTBEAT), ms)));
    const got = await Promise.race([next, tick]);
    clearTimeout(timer);
    if (got === HEARTBEAT) {
      yield HEARTBEAT;
      continue;
    }
    if (got.done) return;
    yield got.value;
    next = source.next();
  }
}

function progressEvent(current: number, total: number, started: number, message: string): LoraspecEvent {
  const seconds = (Date.now() - started) / 1000;
  const rate = seconds > 0 ? current / seconds : undefined;
  return { type: "progress", task: "caption", current, total, rate, eta: rate ? (total - current) / rate : undefined, message };
}

/** A caption's text, at most FILE_LIMITS.caption bytes of it (check names one larger: caption-too-large). */
async function readOptional(path: string): Promise<string | undefined> {
  const read = await readAtMost(path, FILE_LIMITS.caption.bytes).catch(() => undefined);
  return read?.kind === "file" ? read.bytes.toString("utf8") : undefined;
}
