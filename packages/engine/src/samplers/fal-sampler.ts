import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { createFalClient } from "@fal-ai/client";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { SampleJob } from "@loraspec/core/validate/plan-validation.js";
import { atomicWrite } from "../fs/atomic-write.js";
import sharp from "sharp";
import { imagePath, type RenderParams, type Sampler, type SampleSettings } from "./sampler.js";

export interface FalSamplerConfig {
  /** A fal LoRA inference endpoint taking `loras: [{path, scale}]`: fal-ai/flux-lora, fal-ai/flux-2/lora, ... */
  endpoint: string;
  /** FAL_KEY (or id:secret). */
  credentials?: string;
  /** Images in flight at once. */
  concurrency?: number;
  pollIntervalMs?: number;
}

// Inference takes seconds; @fal-ai/client's own default poll is 500 ms (trainers.md §4.6).
const DEFAULT_POLL_MS = 500;
const DEFAULT_CONCURRENCY = 4;

/** The endpoint input for one job (documented fields of fal-ai/flux-lora and fal-ai/flux-2/lora). */
export function falInput(job: SampleJob, settings: SampleSettings, loraUrl: (path: string) => string): Record<string, unknown> {
  const input: Record<string, unknown> = {
    prompt: job.prompt,
    seed: job.seed,
    image_size: { width: settings.width, height: settings.height },
    num_inference_steps: settings.steps,
    num_images: 1,
    enable_safety_checker: false,
    output_format: "png",
    loras: job.adapters.map((a) => ({ path: loraUrl(a.path), scale: a.weight })),
  };
  if (settings.guidance !== undefined) input.guidance_scale = settings.guidance;
  return input;
}

/** Renders jobs on a fal.ai LoRA inference endpoint; local LoRA files are uploaded to fal storage once. */
export function createFalSampler(params: { config: FalSamplerConfig; fetch?: typeof fetch }): Sampler {
  const { config } = params;
  const doFetch = params.fetch ?? fetch;
  const client = createFalClient({
    credentials: config.credentials,
    fetch: doFetch,
    suppressLocalCredentialsWarning: true,
  });
  return {
    name: "fal",
    async *render({ jobs, outDir, settings, signal }: RenderParams): AsyncIterable<LoraspecEvent> {
      if (!config.credentials) {
        throw new LoraspecError("E_REMOTE_AUTH", "the fal sampler needs a fal.ai key", { hint: "set FAL_KEY" });
      }
      yield { type: "phase", name: "sample", message: `${jobs.length} images on fal ${config.endpoint}` };
      const urls = new Map<string, string>();
      for (const path of new Set(jobs.flatMap((j) => j.adapters.map((a) => a.path)))) {
        if (/^https?:\/\//.test(path)) {
          urls.set(path, path);
          continue;
        }
        let bytes: Buffer;
        try {
          bytes = await readFile(path);
        } catch {
          throw new LoraspecError("E_FILE_NOT_FOUND", `LoRA file not found: ${path}`, { file: path });
        }
        yield { type: "log", level: "info", message: `uploading ${basename(path)} to fal storage` };
        const url = await client.storage.upload(new Blob([new Uint8Array(bytes)], { type: "application/octet-stream" }));
        urls.set(path, url);
      }
      const loraUrl = (p: string) => urls.get(p) ?? p;

      const one = async (job: SampleJob): Promise<string> => {
        let result: { data: { images?: { url: string }[] } };
        try {
          result = (await client.subscribe(config.endpoint, {
            input: falInput(job, settings, loraUrl),
            pollInterval: config.pollIntervalMs ?? DEFAULT_POLL_MS,
            abortSignal: signal,
          })) as typeof result;
        } catch (error) {
          if (signal?.aborted) throw new LoraspecError("E_CANCELLED", "cancelled");
          const status = (error as { status?: number }).status;
          throw new LoraspecError(status === 401 || status === 403 ? "E_REMOTE_AUTH" : "E_REMOTE", `fal ${config.endpoint} failed for ${job.id}: ${(error as Error).message}`, {
            details: { status, body: (error as { body?: unknown }).body },
            cause: error,
          });
        }
        const url = result.data.images?.[0]?.url;
        if (!url) throw new LoraspecError("E_REMOTE", `fal ${config.endpoint} returned no image for ${job.id}`, { details: result.data });
        const res = await doFetch(url, { signal });
        if (!res.ok) throw new LoraspecError("E_REMOTE", `downloading ${url} answered ${res.status}`);
        const path = imagePath(outDir, job.id);
        await atomicWrite(path, await sharp(new Uint8Array(await res.arrayBuffer())).png().toBuffer());
        return path;
      };

      // A small pool: up to `concurrency` requests in flight, events in completion order.
      const limit = Math.max(1, config.concurrency ?? DEFAULT_CONCURRENCY);
      const pending = new Map<number, Promise<{ i: number; path: string }>>();
      let next = 0;
      let done = 0;
      const start = (i: number) => {
        const p = one(jobs[i] as SampleJob).then((path) => ({ i, path }));
        p.catch(() => {}); // a failure surfaces through Promise.race; later ones must not go unhandled
        pending.set(i, p);
      };
      while (next < jobs.length && pending.size < limit) start(next++);
      while (pending.size > 0) {
        const { i, path } = await Promise.race(pending.values());
        pending.delete(i);
        if (next < jobs.length) start(next++);
        done++;
        const job = jobs[i] as SampleJob;
        yield { type: "sample", path, prompt: job.prompt, seed: job.seed };
        yield { type: "progress", task: "sample", current: done, total: jobs.length };
      }
    },
  };
}
