import type { Command } from "commander";
import { checkTarget, TARGET_FORMATS } from "@loraspec/core/lora/options.js";
import { renderEvents } from "../render-events.js";

/** `loraspec convert FILE --to diffusers|kohya|comfy [-o OUT] [--allow-drop]`. */
export function registerConvert(program: Command): void {
  program
    .command("convert")
    .description("Convert a LoRA between key formats (every key placed, or an error listing the ones that cannot be)")
    .argument("<file>", "a .safetensors LoRA")
    .requiredOption("--to <format>", TARGET_FORMATS.join(" | "))
    .option("-o, --output <file>", "output file (default: <name>.<format>.safetensors beside the input)")
    .option("--allow-drop", "drop keys that cannot be placed (they are listed) instead of failing")
    .option("--force", "replace the output file if it exists (an input is never replaced)")
    .option("--json", "print events as JSON lines")
    .action(async (file: string, opts: { to: string; output?: string; allowDrop?: boolean; force?: boolean; json?: boolean }) => {
      const to = checkTarget(opts.to)!;
      const output = opts.output ?? file.replace(/(\.safetensors)?$/, `.${to}.safetensors`);
      const { convertLora } = await import("@loraspec/engine/lora/convert-lora.js");
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      try {
        // convertLora refuses an output that is the input (same device and inode, or same real path).
        const result = await renderEvents(convertLora({ input: file, output, to, allowDrop: opts.allowDrop, overwrite: opts.force, signal: controller.signal }), { json: opts.json });
        if (!opts.json && result) process.stderr.write(`wrote ${result.output} (${result.tensors} tensors, ${result.from} -> ${result.format})\n`);
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}
