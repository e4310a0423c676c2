import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { SampleJob } from "@loraspec/core/validate/plan-validation.js";

/** Render settings shared by every sampler (tiny in tests, the base model's defaults for users). */
export interface SampleSettings {
  width: number;
  height: number;
  steps: number;
  guidance?: number;
  negativePrompt?: string;
  /** The prompt's token length for T5/LLM text encoders (the pipelines' max_sequence_length; worker sampler only). */
  maxSequenceLength?: number;
}

export interface RenderParams {
  jobs: SampleJob[];
  /** Each job's image is written to `<outDir>/<job.id>.png`. */
  outDir: string;
  settings: SampleSettings;
  signal?: AbortSignal;
}

/** Renders validation images: the local worker, fal.ai LoRA endpoints, or a ComfyUI server. */
export interface Sampler {
  name: "worker" | "fal" | "comfyui";
  render(params: RenderParams): AsyncIterable<LoraspecEvent>;
}

export function imagePath(outDir: string, jobId: string): string {
  return `${outDir.replace(/[\\/]+$/, "")}/${jobId}.png`;
}
