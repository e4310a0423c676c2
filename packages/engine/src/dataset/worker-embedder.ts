import { isLoraspecError, LoraspecError } from "@loraspec/core/errors.js";
import { runWorker, type SpawnFn } from "../worker/run-worker.js";

export interface WorkerEmbedderConfig {
  /** CLIP (default: the worker's, the one validate scores with) or a DINOv2 id or folder. */
  model?: string;
  kind?: "clip" | "dino";
  device?: string;
  python?: string;
  spawn?: SpawnFn;
  env?: Record<string, string>;
  signal?: AbortSignal;
}

/** Embeddings by path, or why there are none (prep then decides by hash and pixels alone). */
export type EmbedOutcome = { embeddings: Map<string, number[]>; model: string } | { embeddings?: undefined; reason: string; hint?: string };

/**
 * Image embeddings from the local worker (`python -m loraspec_worker embed`), to confirm
 * near-duplicate pairs. A worker that is not installed or a model that cannot load is not an
 * error: the outcome says why, and dedupe goes on without this confirmation. Offline, a model that is
 * not in the Hugging Face cache is refused by the worker in seconds (worker hub.py), not after the hub's retries.
 */
export async function embedWithWorker(paths: readonly string[], config: WorkerEmbedderConfig = {}): Promise<EmbedOutcome> {
  if (paths.length === 0) return { embeddings: new Map(), model: config.model ?? "" };
  const request = { images: paths, model: config.model, kind: config.kind ?? "clip", device: config.device };
  let result: Record<string, unknown> | undefined;
  try {
    for await (const event of runWorker({ command: "embed", request, signal: config.signal, python: config.python, spawn: config.spawn, env: { OMP_NUM_THREADS: "1", ...config.env } })) {
      if (event.type === "done") result = event.result;
    }
  } catch (error) {
    if (isLoraspecError(error) && error.code === "E_CANCELLED") throw error;
    // The worker's hint says how to turn embeddings on (install the worker, fetch the model once online).
    if (!isLoraspecError(error)) return { reason: String(error) };
    return { reason: `${error.code}: ${error.message}`, ...(error.hint ? { hint: error.hint } : {}) };
  }
  const raw = (result?.embeddings ?? {}) as Record<string, unknown>;
  const embeddings = new Map<string, number[]>();
  for (const path of paths) {
    const v = raw[path];
    if (!Array.isArray(v) || !v.every((x) => typeof x === "number")) throw new LoraspecError("E_WORKER_PROTOCOL", `the embed worker returned no embedding for ${path}`);
    embeddings.set(path, v as number[]);
  }
  return { embeddings, model: String(result?.model ?? config.model ?? "") };
}
