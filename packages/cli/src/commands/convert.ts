import type { Command } from "commander";
import { LoraspecError } from "@loraspec/core/errors.js";
import { renderEvents } from "../render-events.js";

const TARGETS = ["diffusers", "kohya", "comfy"] as const;

/** `loraspec convert FILE --to diffusers|kohya|comfy [-o OUT] [--allow-drop]`. */
export function registerConvert(program: Command): void {
  program
    .command("convert")
    .description("Convert a LoRA between key formats (every key placed, or an error listing the ones that cannot be)")
    .argument("<file>", "a .safetensors LoRA")
    .requiredOption("--to <format>", "diffusers | kohya | comfy")
    .option("-o, --output <file>", "output file (default: <name>.<format>.safetensors beside the input)")
    .option("--allow-drop", "drop keys that cannot be placed (they are listed) instead of failing")
    .option("--json", "print events as JSON lines")
    .action(async (file: string, opts: { to: string; output?: string; allowDrop?: boolean; json?: boolean }) => {
      if (!(TARGETS as readonly string[]).includes(opts.to)) throw new LoraspecError("E_USAGE", `--to must be one of ${TARGETS.join(", ")}`, { field: "--to" });
      const output = opts.output ?? file.replace(/(\.safetensors)?$/, `.${opts.to}.safetensors`);
      if (output === file) throw new LoraspecError("E_USAGE", "the output would overwrite the input", { hint: "pass -o with another file name" });
      const { convertLora } = await import("@loraspec/engine/lora/convert-lora.js");
      const result = await renderEvents(convertLora({ input: file, output, to: opts.to as (typeof TARGETS)[number], allowDrop: opts.allowDrop }), { json: opts.json });
      if (!opts.json && result) process.stderr.write(`wrote ${result.output} (${result.tensors} tensors, ${result.from} -> ${result.format})\n`);
    });
}
