import { spawn as nodeSpawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { LoraspecError, type ErrorCode, ERROR_CODES } from "@loraspec/core/errors.js";
import { parseEvent } from "@loraspec/core/events.js";
import type { Captioner } from "./captioner.js";

/** Florence-2 base (0.23B, runs on CPU) in the transformers-native format (the microsoft/ repos need trust_remote_code); FluxGym uses the large variant (trainers.md §5.1). */
export const DEFAULT_WORKER_CAPTION_MODEL = "florence-community/Florence-2-base";

export interface WorkerCaptionerConfig {
  /** Hugging Face id or local folder of the vision-language model. */
  model?: string;
  /** Florence-2 task token, or "prompt" to send the style/target prompt to a chat VLM. */
  task?: string;
  batchSize?: number;
  device?: string;
  /** The worker venv's python (default: worker/.venv/bin/python found above this file, or LORASPEC_PYTHON). */
  python?: string;
  /** Injectable for tests. */
  spawn?: typeof nodeSpawn;
  /** Extra environment for the worker (e.g. HF_HUB_OFFLINE=1). */
  env?: Record<string, string>;
  /** Receives progress as the worker reports it. */
  onEvent?: (event: { type: string; [key: string]: unknown }) => void;
}

/**
 * Captions through the local Python worker (`python -m loraspec_worker caption -`): one process
 * loads the model once and batches every image; JSON-lines events come back on stdout, and the
 * `done` result maps each image path to its caption or error.
 */
export function createWorkerCaptioner(config: WorkerCaptionerConfig = {}): Captioner {
  const spawn = config.spawn ?? nodeSpawn;
  return {
    backend: "worker",
    caption() {
      return Promise.reject(new LoraspecError("E_INTERNAL", "the worker captioner batches: call captionMany"));
    },
    async captionMany({ images, prompt, signal, onProgress }) {
      const python = config.python ?? findWorkerPython();
      const request = {
        model: config.model ?? DEFAULT_WORKER_CAPTION_MODEL,
        task: config.task ?? "<MORE_DETAILED_CAPTION>",
        prompt,
        images: images.map((i) => i.path),
        batch_size: config.batchSize ?? 4,
        device: config.device ?? "auto",
      };
      let child: ChildProcess;
      try {
        child = spawn(python, ["-m", "loraspec_worker", "caption", "-"], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...config.env } });
      } catch (error) {
        throw notInstalled(python, error);
      }
      const onAbort = () => child.kill("SIGTERM");
      signal?.addEventListener("abort", onAbort, { once: true });
      let stderr = "";
      let buffered = "";
      let result: Record<string, unknown> | undefined;
      let failure: LoraspecError | undefined;
      child.stderr?.on("data", (chunk: Buffer) => {
        stderr = (stderr + chunk.toString("utf8")).slice(-4000);
      });
      child.stdout?.on("data", (chunk: Buffer) => {
        buffered += chunk.toString("utf8");
        let newline: number;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (!line) continue;
          let event;
          try {
            event = parseEvent(JSON.parse(line));
          } catch {
            event = undefined;
          }
          if (!event) continue;
          config.onEvent?.(event as { type: string });
          if (event.type === "progress") onProgress?.(event.current);
          else if (event.type === "done") result = event.result;
          else if (event.type === "error") {
            const code = (event.code in ERROR_CODES ? event.code : "E_WORKER_CRASHED") as ErrorCode;
            failure = new LoraspecError(code, event.message, { hint: event.hint, retryable: event.retryable });
          }
        }
      });
      const exit = new Promise<number>((resolve, reject) => {
        child.on("error", (error) => reject(notInstalled(python, error)));
        child.on("close", (code) => resolve(code ?? 1));
      });
      child.stdin?.end(JSON.stringify(request));
      let code: number;
      try {
        code = await exit;
      } finally {
        signal?.removeEventListener("abort", onAbort);
      }
      if (signal?.aborted) throw new LoraspecError("E_CANCELLED", "captioning cancelled");
      if (failure) throw failure;
      if (code !== 0 || !result) {
        throw new LoraspecError("E_WORKER_CRASHED", `the caption worker exited with code ${code}`, { details: { stderr: stderr.slice(-2000) } });
      }
      const captions = (result.captions ?? {}) as Record<string, string>;
      const errors = (result.errors ?? {}) as Record<string, string>;
      const out = new Map<string, string | Error>();
      for (const image of images) {
        if (typeof captions[image.path] === "string") out.set(image.path, captions[image.path]!);
        else out.set(image.path, new LoraspecError("E_IMAGE_UNREADABLE", errors[image.path] ?? "no caption returned"));
      }
      return out;
    },
  };
}

/** worker/.venv/bin/python above this module (works from src/ and from the dist/ bundle), or LORASPEC_PYTHON. */
export function findWorkerPython(): string {
  if (process.env.LORASPEC_PYTHON) return process.env.LORASPEC_PYTHON;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "worker", ".venv", "bin", "python");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return "python3";
}

function notInstalled(python: string, error: unknown): LoraspecError {
  return new LoraspecError("E_WORKER_NOT_INSTALLED", `cannot start the Python worker (${python}): ${(error as Error).message}`, {
    hint: "run `npm run setup:worker`, or set LORASPEC_PYTHON to a python with loraspec_worker installed",
    cause: error,
  });
}
