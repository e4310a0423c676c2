import type { Command } from "commander";
import { checkMergeOptions, MERGE_METHODS, numberFlag } from "@loraspec/core/lora/options.js";
import { renderEvents } from "../render-events.js";

/**
 * `loraspec merge A:0.5 B:0.3 --method cat|linear|ties|dare|svd [--rank R] [--density d] [-o OUT]`;
 * `loraspec merge X:S -o OUT` (one file, cat) writes X with its delta x S, same keys and rank.
 */
export function registerMerge(program: Command): void {
  program
    .command("merge")
    .description(
      "Merge LoRAs: cat (exact stacking), svd/ties/dare (delta space, re-factored to --rank), linear (peft factor average, approximate: its measured delta error is printed). " +
        "One file with cat bakes a strength in: `merge style.safetensors:2 -o style-x2.safetensors` writes the same LoRA (same keys, rank and alpha) with its delta x 2, so 0.3 acts like 0.6",
    )
    .argument("<inputs...>", "LoRA files with weights, e.g. a.safetensors:0.5 b.safetensors:-0.3 (a negative weight subtracts); one file X:S scales it by S (not 0)")
    .option("--method <method>", `${MERGE_METHODS.join(" | ")} (one input: cat only)`, "cat")
    .option("--rank <r>", "output rank for svd/ties/dare, an integer >= 1 (default: the largest input rank)")
    .option("--density <d>", "ties/dare: share of entries kept, in (0, 1] (default 0.7)")
    .option("--seed <n>", "ties/dare: seed of the drop masks, the top-k sample and the randomized SVD (default 0)")
    .option("--to <format>", "output format: diffusers | kohya | comfy (default: the first input's; not with one input, whose keys are kept)")
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
        if (!opts.json && result) {
          const how = typeof result.scale === "number" ? `scaled x${result.scale}, ${result.tensors} tensors, ${result.architecture}` : `${result.method}, ${result.tensors} tensors, ${result.target}${result.exact === true ? "; the exact weighted sum" : deltaErrorText(result.deltaError)}`;
          process.stderr.write(`wrote ${result.output} (${how})\n`);
        }
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}

/** The measured delta error (engine lora/delta-error.ts) as the result line says it: "; delta 12.3% off the exact weighted sum, all 40 modules measured". */
export function deltaErrorText(value: unknown): string {
  if (!value || typeof value !== "object") return "";
  const d = value as { relative: number; modules: number; of: number };
  const pct = d.relative < 1e-6 ? "<0.0001%" : `${(d.relative * 100).toPrecision(3)}%`;
  return `; delta ${pct} off the exact weighted sum, ${d.modules < d.of ? `${d.modules} of ${d.of}` : `all ${d.of}`} modules measured`;
}
