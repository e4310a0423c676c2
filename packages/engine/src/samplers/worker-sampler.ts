import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { runWorker as defaultRunWorker, type RunWorkerParams } from "../worker/run-worker.js";
import type { RenderParams, Sampler } from "./sampler.js";

export interface WorkerSamplerConfig {
  /** Hugging Face id, local diffusers folder, or single file (then `arch`). */
  base: string;
  arch?: string;
  precision?: "bf16" | "fp16" | "fp32";
  device?: string;
  /** The worker's stderr goes here. */
  logFile?: string;
}

export type RunWorkerFn = (params: RunWorkerParams) => AsyncIterable<LoraspecEvent>;

/**
 * Renders jobs with the local worker's `render-jobs` command: the base loads once, every LoRA
 * loads once under its adapter name (diffusers or Kohya format, `load_lora_weights`), and each
 * job switches with `set_adapters(names, weights)`.
 */
export function createWorkerSampler(params: { config: WorkerSamplerConfig; runWorker?: RunWorkerFn }): Sampler {
  const { config } = params;
  const run = params.runWorker ?? defaultRunWorker;
  return {
    name: "worker",
    async *render({ jobs, outDir, settings, signal }: RenderParams): AsyncIterable<LoraspecEvent> {
      const loras = new Map<string, string>();
      for (const job of jobs) {
        for (const a of job.adapters) {
          const known = loras.get(a.name);
          if (known !== undefined && known !== a.path) {
            throw new LoraspecError("E_INTERNAL", `adapter name '${a.name}' names two files: ${known} and ${a.path}`);
          }
          loras.set(a.name, a.path);
        }
      }
      const request: Record<string, unknown> = {
        base: config.base,
        loras: [...loras].map(([name, path]) => ({ name, path })),
        jobs: jobs.map((j) => ({ id: j.id, prompt: j.prompt, seed: j.seed, adapters: j.adapters.map((a) => ({ name: a.name, weight: a.weight })) })),
        out_dir: outDir,
        steps: settings.steps,
        width: settings.width,
        height: settings.height,
      };
      if (config.arch) request.arch = config.arch;
      if (config.precision) request.precision = config.precision;
      if (config.device) request.device = config.device;
      if (settings.guidance !== undefined) request.guidance_scale = settings.guidance;
      if (settings.negativePrompt) request.negative_prompt = settings.negativePrompt;
      if (settings.maxSequenceLength !== undefined) request.max_sequence_length = settings.maxSequenceLength;
      for await (const event of run({ command: "render-jobs", request, signal, logFile: config.logFile })) {
        // The caller's stream has one `done`, at its own end.
        if (event.type !== "done") yield event;
      }
    },
  };
}
