import { Command, CommanderError } from "commander";
import { exitCodeFor, isLoraspecError, LoraspecError } from "@loraspec/core/errors.js";
import { fsError } from "@loraspec/engine/fs/file-operands.js";
import { ioError } from "@loraspec/engine/run/io-errors.js";
import { registrations } from "./commands/index.js";
import { jsonOnlyStdout, printError, printJsonError } from "./output.js";

export const VERSION = "0.1.0";

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command("loraspec")
    .description("A checked specification for LoRA training of image models.")
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  for (const register of registrations) register(program);
  // --json is one behaviour for every command: stdout is JSON lines only, errors included.
  const json = argv.includes("--json") && !argv.includes("--");
  const restore = json ? jsonOnlyStdout() : undefined;
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; a usage mistake exits 2 (unusable input).
      if (json && error.exitCode !== 0) printJsonError(new LoraspecError("E_USAGE", error.message.replace(/^error: /, "")));
      return error.exitCode === 0 ? 0 : 2;
    }
    // A full disk or an I/O error from anywhere is the machine's trouble, not a bug: coded, no stack; so is a
    // file-system refusal of a path the user named (a folder where a file goes, a path under a file).
    const path = (error as NodeJS.ErrnoException | undefined)?.path;
    const coded = ioError(error) ?? (typeof path === "string" ? fsError(error, path) : undefined) ?? error;
    if (json) printJsonError(coded);
    else printError(coded);
    return exitCodeFor(coded);
  } finally {
    restore?.();
  }
}

export { isLoraspecError };
