import { existsSync } from "node:fs";
import { homedir } from "node:os";
import type { Command } from "commander";
import pc from "picocolors";
import { LoraspecError } from "@loraspec/core/errors.js";
import { checkWeight, parseWeightedPath } from "@loraspec/core/lora/options.js";
import { parseRenderFlag } from "@loraspec/core/validate/render-flags.js";
import { printJson } from "../output.js";

interface SampleOptions {
  base: string;
  arch?: string;
  lora: string[];
  prompt: string[];
  seed: string[];
  out: string;
  steps?: string;
  guidance?: string;
  maxSequenceLength?: string;
  width?: string;
  height?: string;
  negative?: string;
  force?: boolean;
  json?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** `loraspec sample --base DIR --lora a.safetensors:0.8 --prompt "..." --seed 1`: images with LoRAs stacked, through the worker. */
export function registerSample(program: Command): void {
  program
    .command("sample")
    .description("Render images from a base model with LoRAs at per-adapter weights (prompts x seeds), with the local worker")
    .requiredOption("--base <model>", "base model: a diffusers folder, a .safetensors file (with --arch) or a Hugging Face id")
    .option("--arch <arch>", "sdxl | flux1 | flux2-klein (needed for single-file bases)")
    .option("--lora <file[:weight]>", "a LoRA and its weight (default 1.0); repeat to stack", collect, [])
    .option("--prompt <text>", "a prompt; repeat for several", collect, [])
    .option("--seed <n>", "a seed; repeat for several (default 0)", collect, [])
    .option("--out <dir>", "output folder", "samples")
    .option("--steps <n>", "denoising steps (default 28)")
    .option("--guidance <x>", "guidance scale")
    .option("--max-sequence-length <n>", "prompt token length for T5/LLM text encoders (FLUX, Qwen-Image, Z-Image; default the pipeline's)")
    .option("--width <px>", "image width")
    .option("--height <px>", "image height")
    .option("--negative <text>", "negative prompt (SDXL)")
    .option("--force", "replace images of the same names in --out (other files there are never touched)")
    .option("--json", "print events as JSON lines and the result as JSON")
    .action(async (opts: SampleOptions) => {
      const { resolve } = await import("node:path");
      const { existsSync } = await import("node:fs");
      const { runWorker } = await import("@loraspec/engine/worker/run-worker.js");
      const { assertSampleOutputsAreNew, sampleImageNames } = await import("@loraspec/engine/lora/sample-outputs.js");
      const { renderEvents } = await import("../render-events.js");
      if (opts.prompt.length === 0) throw new LoraspecError("E_USAGE", "sample needs at least one --prompt");
      const loras = opts.lora.map((arg) => parseLoraArg(arg)).map((l) => ({ ...l, path: resolve(l.path) }));
      for (const l of loras) {
        if (!existsSync(l.path)) throw new LoraspecError("E_FILE_NOT_FOUND", `LoRA file not found: ${l.path}`, { field: "--lora" });
      }
      const seeds = (opts.seed.length ? opts.seed : ["0"]).map((s) => parseRenderFlag(s, "--seed", "seed")!);
      // validate's rule (core contract/base-path.ts): ./x, ../x, /x, ~/x are local, the rest a Hugging Face id.
      const { baseSource } = await import("@loraspec/core/contract/base-path.js");
      const { looksLocal } = await import("@loraspec/engine/project/preflight-base.js");
      const source = baseSource(opts.base, { contractDir: process.cwd(), home: homedir() });
      const base = source.kind === "local" ? source.path : source.id;
      const local = source.kind === "hub" ? looksLocal(opts.base, process.cwd(), "--base", "render with it") : undefined;
      if (local) process.stderr.write(`${pc.yellow("warning")} ${local.message}\n`);
      const request = {
        base,
        arch: opts.arch,
        loras,
        prompts: opts.prompt,
        seeds,
        out_dir: resolve(opts.out),
        files: sampleImageNames(opts.prompt.length, seeds),
        steps: parseRenderFlag(opts.steps, "--steps", "count"),
        guidance_scale: parseRenderFlag(opts.guidance, "--guidance", "scale"),
        max_sequence_length: parseRenderFlag(opts.maxSequenceLength, "--max-sequence-length", "count"),
        width: parseRenderFlag(opts.width, "--width", "side"),
        height: parseRenderFlag(opts.height, "--height", "side"),
        negative_prompt: opts.negative,
      };
      await assertSampleOutputsAreNew({ outDir: request.out_dir, promptCount: opts.prompt.length, seeds, overwrite: opts.force });
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once("SIGINT", onSigint);
      try {
        const result = await renderEvents(runWorker({ command: "sample", request, signal: controller.signal }), { json: opts.json });
        if (opts.json) printJson(result ?? {});
        else {
          const images = (result?.images as { path: string }[] | undefined) ?? [];
          process.stdout.write(`${pc.green(`✓ ${images.length} image(s)`)} in ${request.out_dir}\n`);
        }
      } finally {
        process.off("SIGINT", onSigint);
      }
    });
}

/** `path.safetensors:0.8` -> {path, weight}: merge's parser (core lora/options.ts, the files deciding what a colon means), the weight checked as merge checks it. */
export function parseLoraArg(arg: string, exists: (path: string) => boolean = existsSync): { path: string; weight: number } {
  const l = parseWeightedPath(arg, exists);
  return { path: l.path, weight: checkWeight(l.weight, `--lora ${l.path}`) };
}
