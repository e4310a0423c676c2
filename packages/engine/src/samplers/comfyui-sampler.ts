import { setTimeout as delay } from "node:timers/promises";
import sharp from "sharp";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { SampleJob } from "@loraspec/core/validate/plan-validation.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { imagePath, type RenderParams, type Sampler, type SampleSettings } from "./sampler.js";

export interface ComfyuiSamplerConfig {
  /** The server, e.g. http://127.0.0.1:8188. */
  url: string;
  /** The base checkpoint as ComfyUI names it (a file in models/checkpoints). */
  checkpoint: string;
  /** How a LoRA path maps to ComfyUI's lora_name (a file in models/loras); default: its file name. */
  loraName?: (path: string) => string;
  sampler?: string;
  scheduler?: string;
  /** How often /history is polled. */
  pollMs?: number;
  /** Give up on one image after this long. */
  timeoutMs?: number;
}

// One image at SDXL/FLUX size takes seconds on a GPU; poll often enough to feel live without
// hammering the server, and give a queued image 10 minutes before calling it stuck.
const DEFAULT_POLL_MS = 500;
const DEFAULT_TIMEOUT_MS = 600_000;

type Workflow = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

/**
 * A ComfyUI API-format workflow: checkpoint -> LoraLoader chain (one per adapter, model and
 * clip strength = its weight) -> text encode -> empty latent -> KSampler -> VAE decode -> save.
 */
export function buildComfyWorkflow(params: {
  job: SampleJob;
  settings: SampleSettings;
  checkpoint: string;
  loraName: (path: string) => string;
  sampler?: string;
  scheduler?: string;
}): Workflow {
  const { job, settings } = params;
  const wf: Workflow = {
    ckpt: { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: params.checkpoint } },
  };
  let model: [string, number] = ["ckpt", 0];
  let clip: [string, number] = ["ckpt", 1];
  job.adapters.forEach((a, i) => {
    const id = `lora_${i + 1}`;
    wf[id] = {
      class_type: "LoraLoader",
      inputs: { model, clip, lora_name: params.loraName(a.path), strength_model: a.weight, strength_clip: a.weight },
    };
    model = [id, 0];
    clip = [id, 1];
  });
  wf.positive = { class_type: "CLIPTextEncode", inputs: { clip, text: job.prompt } };
  wf.negative = { class_type: "CLIPTextEncode", inputs: { clip, text: settings.negativePrompt ?? "" } };
  wf.latent = { class_type: "EmptyLatentImage", inputs: { width: settings.width, height: settings.height, batch_size: 1 } };
  wf.sampler = {
    class_type: "KSampler",
    inputs: {
      model,
      positive: ["positive", 0],
      negative: ["negative", 0],
      latent_image: ["latent", 0],
      seed: job.seed,
      steps: settings.steps,
      cfg: settings.guidance ?? 7,
      sampler_name: params.sampler ?? "euler",
      scheduler: params.scheduler ?? "normal",
      denoise: 1,
    },
  };
  wf.decode = { class_type: "VAEDecode", inputs: { samples: ["sampler", 0], vae: ["ckpt", 2] } };
  wf.save = { class_type: "SaveImage", inputs: { images: ["decode", 0], filename_prefix: `loraspec_${job.id}` } };
  return wf;
}

/** Waits ms; an abort ends the wait as E_CANCELLED. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => {
    throw new LoraspecError("E_CANCELLED", "cancelled");
  });
}

/** Renders jobs on a ComfyUI server through its HTTP API: POST /prompt, GET /history/{id}, GET /view. */
export function createComfyuiSampler(params: { config: ComfyuiSamplerConfig; fetch?: typeof fetch }): Sampler {
  const { config } = params;
  const doFetch = params.fetch ?? fetch;
  const base = config.url.replace(/\/+$/, "");
  const loraName = config.loraName ?? ((p: string) => p.split(/[\\/]/).pop() ?? p);
  const clientId = `loraspec-${Math.random().toString(36).slice(2)}`;

  async function call(path: string, init: RequestInit, signal?: AbortSignal): Promise<Response> {
    let res: Response;
    try {
      res = await doFetch(`${base}${path}`, { ...init, signal });
    } catch (error) {
      if (signal?.aborted) throw new LoraspecError("E_CANCELLED", "cancelled");
      throw new LoraspecError("E_REMOTE", `cannot reach ComfyUI at ${base}: ${(error as Error).message}`, {
        hint: "start ComfyUI (python main.py --listen 127.0.0.1) or fix validation.comfyui url",
        cause: error,
      });
    }
    if (!res.ok) {
      const body = await res.text().catch(() => "");
      throw new LoraspecError("E_REMOTE", `ComfyUI ${init.method ?? "GET"} ${path} answered ${res.status}: ${body.slice(0, 500)}`, {
        details: { status: res.status, body: body.slice(0, 2000) },
        retryable: res.status >= 500,
      });
    }
    return res;
  }

  return {
    name: "comfyui",
    async *render({ jobs, outDir, settings, signal }: RenderParams): AsyncIterable<LoraspecEvent> {
      yield { type: "phase", name: "sample", message: `${jobs.length} images on ComfyUI ${base}` };
      let done = 0;
      for (const job of jobs) {
        const workflow = buildComfyWorkflow({ job, settings, checkpoint: config.checkpoint, loraName, sampler: config.sampler, scheduler: config.scheduler });
        const submit = (await (
          await call("/prompt", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: workflow, client_id: clientId }) }, signal)
        ).json()) as { prompt_id?: string; node_errors?: Record<string, unknown> };
        if (!submit.prompt_id) {
          throw new LoraspecError("E_REMOTE", "ComfyUI accepted the workflow without a prompt_id", { details: submit });
        }
        if (submit.node_errors && Object.keys(submit.node_errors).length > 0) {
          throw new LoraspecError("E_REMOTE", "ComfyUI rejected the workflow", { details: submit.node_errors, hint: "check the checkpoint and LoRA names exist in ComfyUI's models folders" });
        }
        const started = Date.now();
        let image: { filename: string; subfolder?: string; type?: string } | undefined;
        while (!image) {
          const history = (await (await call(`/history/${encodeURIComponent(submit.prompt_id)}`, { method: "GET" }, signal)).json()) as Record<
            string,
            { outputs?: Record<string, { images?: { filename: string; subfolder?: string; type?: string }[] }>; status?: { status_str?: string; completed?: boolean; messages?: unknown } }
          >;
          const entry = history[submit.prompt_id];
          if (entry?.status?.status_str === "error") {
            throw new LoraspecError("E_REMOTE", `ComfyUI failed to render ${job.id}`, { details: entry.status.messages });
          }
          image = entry?.outputs?.save?.images?.[0] ?? Object.values(entry?.outputs ?? {}).flatMap((o) => o.images ?? [])[0];
          if (image) break;
          if (Date.now() - started > (config.timeoutMs ?? DEFAULT_TIMEOUT_MS)) {
            throw new LoraspecError("E_TIMEOUT", `ComfyUI did not finish ${job.id} in ${Math.round((config.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000)} s`);
          }
          await sleep(config.pollMs ?? DEFAULT_POLL_MS, signal);
        }
        const query = new URLSearchParams({ filename: image.filename, subfolder: image.subfolder ?? "", type: image.type ?? "output" });
        const bytes = new Uint8Array(await (await call(`/view?${query}`, { method: "GET" }, signal)).arrayBuffer());
        const path = imagePath(outDir, job.id);
        await atomicWrite(path, await sharp(bytes).png().toBuffer());
        done++;
        yield { type: "sample", path, prompt: job.prompt, seed: job.seed };
        yield { type: "progress", task: "sample", current: done, total: jobs.length };
      }
    },
  };
}
