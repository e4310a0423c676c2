import type { Command } from "commander";
import { LoraspecError } from "@loraspec/core/errors.js";
import { renderEvents } from "../render-events.js";

const METHODS = ["cat", "linear", "ties", "dare", "svd"] as const;

/** `loraspec merge A:0.5 B:0.3 --method cat|linear|ties|dare|svd [--rank R] [--density d] [-o OUT]`. */
export function registerMerge(program: Command): void {
  program
    .command("merge")
    .description("Merge LoRAs: cat (exact stacking), svd/ties/dare (delta space, re-factored to --rank), linear (peft factor average, lossy)")
    .argument("<inputs...>", "LoRA files with weights, e.g. a.safetensors:0.5 b.safetensors:0.3")
    .option("--method <method>", "cat | linear | ties | dare | svd", "cat")
    .option("--rank <r>", "output rank for svd/ties/dare (default: the largest input rank)")
    .option("--density <d>", "ties/dare: share of entries kept (default 0.7)")
    .option("--seed <n>", "dare: seed of the drop masks (default 0)")
    .option("--to <format>", "output format: diffusers | kohya | comfy (default: the first input's)")
    .option("-o, --output <file>", "output file", "merged.safetensors")
    .option("--json", "print events as JSON lines")
    .action(async (args: string[], opts: { method: string; rank?: string; density?: string; seed?: string; to?: string; output: string; json?: boolean }) => {
      if (!(METHODS as readonly string[]).includes(opts.method)) throw new LoraspecError("E_USAGE", `--method must be one of ${METHODS.join(", ")}`, { field: "--method" });
      if (opts.to !== undefined && !["diffusers", "kohya", "comfy"].includes(opts.to)) throw new LoraspecError("E_USAGE", "--to must be one of diffusers, kohya, comfy", { field: "--to" });
      const num = (v: string | undefined, name: string) => {
        if (v === undefined) return undefined;
        const n = Number(v);
        if (!Number.isFinite(n)) throw new LoraspecError("E_USAGE", `${name} must be a number`, { field: name });
        return n;
      };
      const { mergeLora, parseMergeInput } = await import("@loraspec/engine/lora/merge-lora.js");
      const inputs = args.map(parseMergeInput);
      if (inputs.some((i) => i.path === opts.output)) throw new LoraspecError("E_USAGE", "the output would overwrite an input", { hint: "pass -o with another file name" });
      const result = await renderEvents(
        mergeLora({
          inputs,
          output: opts.output,
          method: opts.method as (typeof METHODS)[number],
          rank: num(opts.rank, "--rank"),
          density: num(opts.density, "--density"),
          seed: num(opts.seed, "--seed"),
          to: opts.to as "diffusers" | "kohya" | "comfy" | undefined,
        }),
        { json: opts.json },
      );
      if (!opts.json && result) process.stderr.write(`wrote ${result.output} (${result.method}, ${result.tensors} tensors, ${result.target})\n`);
    });
}
