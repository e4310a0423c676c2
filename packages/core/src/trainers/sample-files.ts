import type { LoraspecEvent } from "../events.js";
import type { Sourced } from "../knowledge/types.js";

/**
 * How Kohya (sd-scripts) and ai-toolkit name the sample images they render while training, and how
 * a file name becomes the same `sample` event the built-in trainer emits (step, prompt, seed, path).
 * The compilers (compile/kohya, compile/ai-toolkit) describe each run's sample folder and its
 * prompts as a `SampleWatch`; the engine's supervisor watches the folder and calls `sampleEventOf`
 * for each new file. Pure.
 */
export type SampleNaming = "kohya" | "ai-toolkit";

export interface SampleWatch {
  naming: SampleNaming;
  /** The folder the trainer writes its sample images into (absolute). */
  dir: string;
  /** sd-scripts' --output_name: the file names' prefix (`{output_name}_`). */
  prefix?: string;
  /** The prompt and seed behind each index the trainer writes in a file name, in the trainer's order. */
  items: { prompt: string; seed: number }[];
  /** The run's optimizer steps: ai-toolkit labels its end-of-run sample with this number. */
  totalSteps: number;
}

export interface SampleFileName {
  /** The step number as the file name writes it. */
  label: number;
  index: number;
  seed?: number;
}

export const SAMPLE_FILE_NAMING: Record<SampleNaming, Sourced & { pattern: RegExp; folder: string }> = {
  kohya: {
    // `{output_name}_{steps:06d}_{i:02d}_{%Y%m%d%H%M%S}[_{seed}].png` in `{output_dir}/sample`; i is the
    // prompt line's position (comment lines excluded). The epoch form `e{epoch:06d}` is only written with
    // --sample_every_n_epochs, which loraspec never compiles. steps is global_step after the update.
    pattern: /^(\d{6,})_(\d{2,})_(\d{14})(?:_(-?\d+))?\.png$/,
    folder: "sample",
    source:
      "kohya-ss/sd-scripts v0.10.1 (ae72efb) library/train_util.py L6438 (save_dir), L6450 (enum), L6572-6577 (img_filename); " +
      "library/flux_train_utils.py L78, L290-294 (same name); train_network.py L1488-1491 (global_step += 1, then sample_images)",
    asOf: "2026-12-02",
  },
  "ai-toolkit": {
    // `[time]_{_step:09d}_[count].{ext}` in `{training_folder}/{name}/samples`: [time] is milliseconds since
    // the epoch, [count] the position in the sample list unpadded (max_count 0), ext `format` (default jpg).
    // Written into samples/.tmp and moved into place with os.replace (whole files only).
    pattern: /^(\d+)__(\d{9,})_(\d+)\.(jpg|png|webp)$/,
    folder: "samples",
    source:
      "ostris/ai-toolkit 27a03a9 jobs/process/BaseSDTrainProcess.py L286 (sample_folder), L303-311 (filename), L2543 + L2725-2732 " +
      "(in-loop sample labelled with the 0-based step_num after that step's update), L2805 (step_num = step + 1), L2821 (end-of-run sample); " +
      "toolkit/config_modules.py L93 (format jpg), L1229-1236 (_get_path_no_ext), L1254-1280 (save_image_atomic); " +
      "toolkit/stable_diffusion_model.py L1394, L1731 (count = position in the list)",
    asOf: "2026-12-02",
  },
};

/** A file name of the trainer's own sample naming, else undefined (other files, hostile names). */
export function parseSampleFileName(watch: Pick<SampleWatch, "naming" | "prefix">, name: string): SampleFileName | undefined {
  let rest = name;
  if (watch.naming === "kohya" && watch.prefix) {
    if (!name.startsWith(`${watch.prefix}_`)) return undefined;
    rest = name.slice(watch.prefix.length + 1);
  }
  const m = SAMPLE_FILE_NAMING[watch.naming].pattern.exec(rest);
  if (!m) return undefined;
  const label = Number(watch.naming === "kohya" ? m[1] : m[2]);
  const index = Number(watch.naming === "kohya" ? m[2] : m[3]);
  const seed = watch.naming === "kohya" && m[4] !== undefined ? Number(m[4]) : undefined;
  if (!Number.isSafeInteger(label) || !Number.isSafeInteger(index)) return undefined;
  if (seed !== undefined && !Number.isSafeInteger(seed)) return undefined;
  return { label, index, ...(seed === undefined ? {} : { seed }) };
}

/**
 * The optimizer updates behind a sample. Kohya's label is global_step after the update. ai-toolkit
 * labels an in-loop sample with the 0-based index of the step just trained (one less than the
 * updates, as its checkpoints: parse-ai-toolkit-line.ts), its end-of-run sample with the total, and a
 * baseline before training with 0.
 */
export function sampleStepOf(watch: Pick<SampleWatch, "naming" | "totalSteps">, label: number): number {
  if (watch.naming === "kohya" || label === 0 || label >= watch.totalSteps) return label;
  return label + 1;
}

/** The `sample` event for one file in the watched folder, or undefined when it is not one of the run's samples. */
export function sampleEventOf(watch: SampleWatch, name: string, path: string): Extract<LoraspecEvent, { type: "sample" }> | undefined {
  const parsed = parseSampleFileName(watch, name);
  if (!parsed) return undefined;
  const item = watch.items[parsed.index];
  // An index past the run's prompts (or a seed that is not the one asked for) is no sample of this run.
  if (!item || (parsed.seed !== undefined && parsed.seed !== item.seed)) return undefined;
  const step = sampleStepOf(watch, parsed.label);
  if (step > watch.totalSteps) return undefined;
  return { type: "sample", step, path, prompt: item.prompt, seed: item.seed };
}
