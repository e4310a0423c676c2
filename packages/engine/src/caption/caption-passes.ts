import { FLATTEN_BACKGROUND } from "@loraspec/core/knowledge/image-formats.js";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { cleanCaption } from "@loraspec/core/captions/caption-prompts.js";
import { fixCaption } from "@loraspec/core/captions/caption-rules.js";
import { LoraspecError, isLoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { mapPool } from "../dataset/map-pool.js";
import { readImageFile } from "../dataset/read-image-file.js";
import { atomicWrite } from "../fs/atomic-write.js";
import type { CaptionDatasetParams, CaptionSummary } from "./caption-dataset.js";
import { CAPTION_HEARTBEAT_MS, CAPTION_IMAGE_LONG_SIDE, CAPTION_TIMEOUT_RETRIES, retryDelayMs, type RetryPolicy } from "./caption-policy.js";

/** An image to caption and the caption file it gets (both relative to the dataset folder). */
export interface CaptionItem {
  image: string;
  caption: string;
}

/** One captioning pass over `todo`: what it writes goes into `summary`. */
export interface CaptionJob {
  params: CaptionDatasetParams;
  todo: CaptionItem[];
  prompt: string;
  summary: CaptionSummary;
  retry: RetryPolicy;
  sleep: (ms: number) => Promise<void>;
  /** When the pass started (Date.now()), for the progress rate. */
  started: number;
}

/**
 * The local worker loads the model once and batches; progress comes back as it goes. The worker
 * reports progress through a callback while one promise runs: relay it as events, then write
 * each caption it returned (or report the image's failure).
 */
export async function* captionWithWorker(job: CaptionJob): AsyncGenerator<LoraspecEvent, void> {
  const { params, todo, started } = job;
  const reported: number[] = [];
  let wake: (() => void) | undefined;
  let finished = false;
  // Only called when the captioner has captionMany (captionDataset checks).
  const pending = params.captioner
    .captionMany!({
      images: todo.map((t) => ({ path: join(params.dir, t.image), name: t.image })),
      prompt: job.prompt,
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
    if (typeof result === "string") await writeCaption(job, item, result);
    else yield failureEvent(job.summary, item, result ?? new LoraspecError("E_WORKER_PROTOCOL", "the worker returned no caption for this image"));
  }
  yield progressEvent(todo.length, todo.length, started, "done");
}

/**
 * HTTP backends: a few requests in flight, progress after each image and a heartbeat while none
 * finishes. An image that keeps failing is reported and the rest carry on; a wrong key stops all.
 */
export async function* captionOverHttp(job: CaptionJob): AsyncGenerator<LoraspecEvent, void> {
  const { params, todo, started } = job;
  const concurrency = Math.max(1, params.concurrency ?? Math.min(4, availableParallelism() * 2));
  let done = 0;
  const outcomes = mapPool(todo, concurrency, (item) => captionOne(job, item), params.signal);
  for await (const outcome of withHeartbeat(outcomes, params.heartbeatMs ?? CAPTION_HEARTBEAT_MS)) {
    if (outcome === HEARTBEAT) {
      // Nothing finished for a while: say so, so a slow or hung server is visible.
      yield progressEvent(done, todo.length, started, `waiting on ${params.captioner.backend} (${Math.round((Date.now() - started) / 1000)} s)`);
      continue;
    }
    done++;
    // A wrong key fails every image the same way: stop at once rather than report it N times.
    if (isLoraspecError(outcome.error) && outcome.error.code === "E_REMOTE_AUTH") throw outcome.error;
    if (outcome.error !== undefined) yield failureEvent(job.summary, outcome.item, outcome.error);
    yield progressEvent(done, todo.length, started, outcome.item.image);
  }
}

/** Captions one image through `captioner.caption`, retrying transient failures with backoff; never throws. */
async function captionOne(job: CaptionJob, item: CaptionItem): Promise<{ item: CaptionItem; error: unknown }> {
  const { params, retry } = job;
  try {
    const image = await captionImage(join(params.dir, item.image), item.image);
    let timeouts = 0;
    for (let attempt = 0; ; attempt++) {
      if (params.signal?.aborted) throw new LoraspecError("E_CANCELLED", "captioning cancelled");
      try {
        const raw = await params.captioner.caption({ image, mimeType: "image/jpeg", prompt: job.prompt, name: item.image, signal: params.signal });
        await writeCaption(job, item, raw);
        return { item, error: undefined };
      } catch (error) {
        // Only errors that say so are retried (rate limits, 5xx, dropped connections); a bug or a 4xx is not.
        const retryable = isLoraspecError(error) && error.retryable;
        const timedOut = isLoraspecError(error) && error.code === "E_TIMEOUT" && ++timeouts > CAPTION_TIMEOUT_RETRIES;
        if (!retryable || timedOut || attempt >= retry.maxRetries || params.signal?.aborted) throw error;
        job.summary.retries++;
        await job.sleep(retryDelayMs(retry, attempt));
      }
    }
  } catch (error) {
    return { item, error };
  }
}

/** Cleans the model's answer, puts the trigger in place and writes the caption file (atomically). */
async function writeCaption(job: CaptionJob, item: CaptionItem, raw: string): Promise<void> {
  const { params, summary } = job;
  const { text: clean, removed } = cleanCaption(raw, params.style);
  const text = params.trigger ? fixCaption(clean, params.trigger, params.style) : clean;
  await atomicWrite(join(params.dir, item.caption), `${text}\n`);
  summary.written.push(item.caption);
  if (removed.length) summary.cleaned.push({ caption: item.caption, removed });
}

/** Records an image that got no caption and says so. */
function failureEvent(summary: CaptionSummary, item: { image: string }, error: unknown): LoraspecEvent {
  const code = isLoraspecError(error) ? error.code : "E_INTERNAL";
  const message = (error as Error).message ?? String(error);
  summary.failed.push({ image: item.image, code, message });
  return { type: "warning", code, message: `${item.image}: no caption (${message})`, file: item.image };
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
