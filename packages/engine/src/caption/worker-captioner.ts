import { LoraspecError } from "@loraspec/core/errors.js";
import { runWorker, type SpawnFn } from "../worker/run-worker.js";
import type { Captioner } from "./captioner.js";

/**
 * Florence-2 base (0.23B, runs on CPU) in the transformers-native format (the microsoft/ repos
 * need trust_remote_code); FluxGym uses the large variant (trainers.md §5.1).
 */
export const DEFAULT_WORKER_CAPTION_MODEL = "florence-community/Florence-2-base";

export interface WorkerCaptionerConfig {
  /** Hugging Face id or local folder of the vision-language model. */
  model?: string;
  /** Florence-2 task token; chat VLMs get the style/target prompt instead. */
  task?: string;
  batchSize?: number;
  device?: string;
  /** Generation knobs passed through (tests use min_new_tokens on random models). */
  generation?: { max_new_tokens?: number; min_new_tokens?: number; num_beams?: number };
  /** The worker venv's python (default: runWorker's lookup). */
  python?: string;
  spawn?: SpawnFn;
  env?: Record<string, string>;
  logFile?: string;
}

/**
 * Captions through the local Python worker (`python -m loraspec_worker caption -`, via runWorker):
 * one process loads the model once and batches every image; the `done` result maps each image
 * path to its caption, or to an error for that image alone.
 */
export function createWorkerCaptioner(config: WorkerCaptionerConfig = {}): Captioner {
  return {
    backend: "worker",
    caption() {
      return Promise.reject(new LoraspecError("E_INTERNAL", "the worker captioner batches: call captionMany"));
    },
    async captionMany({ images, prompt, signal, onProgress }) {
      const request = {
        model: config.model ?? DEFAULT_WORKER_CAPTION_MODEL,
        task: config.task,
        prompt,
        images: images.map((i) => i.path),
        batch_size: config.batchSize,
        device: config.device,
        ...config.generation,
      };
      let result: Record<string, unknown> | undefined;
      for await (const event of runWorker({ command: "caption", request, signal, python: config.python, spawn: config.spawn, env: config.env, logFile: config.logFile })) {
        if (event.type === "progress") onProgress?.(event.current);
        else if (event.type === "done") result = event.result;
      }
      if (!result) throw new LoraspecError("E_WORKER_PROTOCOL", "the caption worker ended without a result");
      const captions = (result.captions ?? {}) as Record<string, unknown>;
      const errors = (result.errors ?? {}) as Record<string, unknown>;
      const out = new Map<string, string | Error>();
      for (const image of images) {
        const text = captions[image.path];
        out.set(image.path, typeof text === "string" ? text : new LoraspecError("E_IMAGE_UNREADABLE", String(errors[image.path] ?? "no caption returned")));
      }
      return out;
    },
  };
}
