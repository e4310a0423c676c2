import type { Command } from "commander";
import pc from "picocolors";
import { LoraspecError } from "@loraspec/core/errors.js";
import { parseRenderFlag } from "@loraspec/core/validate/render-flags.js";
import { printJson } from "../output.js";

interface ExportScriptOptions {
  lora?: string;
  output: string;
  force?: boolean;
  trigger?: string;
  target?: "character" | "style" | "product";
  base?: string;
  steps?: string;
  guidance?: string;
  json?: boolean;
}

/** `loraspec export-script [lora.yaml] --lora FILE -o validate.py`: the rubric as a standalone diffusers script. */
export function registerExportScript(program: Command): void {
  program
    .command("export-script")
    .description("Write a standalone, readable diffusers script that renders the contract's validation rubric (trigger on/off, sweep, variations, scenes, stack) with the failure symptoms to watch for")
    .argument("[contract]", "the contract file", "lora.yaml")
    .option("--lora <file>", "the LoRA file the script loads")
    .option("-o, --output <file>", "where to write the script", "validate.py")
    .option("--force", "replace an existing file")
    .option("--trigger <word>", "the trigger word when there is no contract")
    .option("--target <kind>", "character | style | product when there is no contract")
    .option("--base <model>", "base model (Hugging Face id or diffusers folder) instead of the contract's")
    .option("--steps <n>", "denoising steps written as the script's default (default: the base's sampling steps, as its training samples)")
    .option("--guidance <x>", "guidance scale written as the script's default (default: the base's, as its training samples)")
    .option("--json", "print the result as JSON")
    .action(async (contractPath: string, opts: ExportScriptOptions, command: Command) => {
      if (!opts.lora) throw new LoraspecError("E_USAGE", "export-script needs --lora FILE");
      const steps = parseRenderFlag(opts.steps, "--steps", "count");
      const guidance = parseRenderFlag(opts.guidance, "--guidance", "scale");
      const { writeValidationScript } = await import("@loraspec/engine/validate/write-validation-script.js");
      const result = await writeValidationScript({
        contractPath: command.args.length > 0 ? contractPath : undefined,
        lora: opts.lora,
        out: opts.output,
        force: opts.force,
        trigger: opts.trigger,
        target: opts.target,
        base: opts.base,
        steps,
        guidance,
      });
      if (opts.json) printJson(result);
      else {
        for (const warning of result.warnings ?? []) process.stderr.write(`${pc.yellow("warning")} ${warning}\n`);
        process.stdout.write(`${pc.green("✓")} ${result.path}: run it with python ${opts.output} (--help for options)\n`);
      }
    });
}
