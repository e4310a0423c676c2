import type { Command } from "commander";
import { checkMergeOptions, MERGE_METHODS, numberFlag } from "@loraspec/core/lora/options.js";
import { renderEvents } from "../render-events.js";

/** `loraspec merge A:0.5 B:0.3 --method cat|linear|ties|dare|svd [--rank R] [--density d] [-o OUT]`. */
export function registerMerge(program: Command): void {
  program
    .command("merge")
    .description("Merge LoRAs: cat (exact stacking), svd/ties/dare (delta space, re-factored to --rank), linear (peft factor average, lossy)")
    .argument("<inputs...>", "LoRA files with weights, e.g. a.safetensors:0.5 b.safetensors:-0.3 (a negative weight subtracts)")
    .option("--method <method>", MERGE_METHODS.join(" | "), "cat")
    .option("--rank <r>", "output rank for svd/ties/dare, an integer >= 1 (default: the largest input rank)")
    .option("--density <d>", "ties/dare: share of entries kept, in (0, 1] (default 0.7)")
    .option("--seed <n>", "ties/dare: seed of the drop masks, the top-k sample and the randomized SVD (default 0)")
    .option("--to <format>", "output format: diffusers | kohya | comfy (default: the first input's)")
    .option("-o, --output <file>", "output file", "merged.safetensors")
    .option("--force", "replace the output file if it exists (an input is never replaced)")
    .option("--json", "print events as JSON lines")
    .action(async (args: string[], opts: { method: string; rank?: string; density?: string; seed?: string; to?: string; output: string; force?: boolean; json?: boolean }) => {
      const { mergeLora, parseMergeInput } = await import("@loraspec/engine/lora/merge-lora.js");
      // The library checks again (same function); checking here first refuses bad flags before the engine loads anything.
      const options = checkMergeOptions({
        inputs: args.map((arg) => parseMergeInput(arg)),
        method: opts.method,
        rank: numberFlag(opts.rank, "--rank"),
        density: numberFlag(opts.density, "--density"),
        seed: numberFlag(opts.seed, "--seed"),
        to: opts.to,
      });
      // Ctrl-C (or a SIGTERM) cancels: the worker is stopped as `stop` stops a run, the temp folder removed.
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      try {
        const result = await renderEvents(mergeLora({ ...options, output: opts.output, overwrite: opts.force, signal: controller.signal }), { json: opts.json });
        if (!opts.json && result) process.stderr.write(`wrote ${result.output} (${result.method}, ${result.tensors} tensors, ${result.target})\n`);
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}
