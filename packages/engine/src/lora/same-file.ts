import { realpath, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";

/** Device + inode of an existing path (symlinks followed), or undefined when there is none. */
async function identity(path: string): Promise<string | undefined> {
  try {
    const s = await stat(path, { bigint: true });
    return `${s.dev}:${s.ino}`;
  } catch {
    return undefined;
  }
}

/** The canonical path of a file that may not exist yet: its folder's realpath plus its name. */
async function canonical(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    try {
      return join(await realpath(dirname(resolve(path))), basename(path));
    } catch {
      return resolve(path);
    }
  }
}

/**
 * Refuses an output that is one of the inputs under another name: the same device and inode
 * (hard links, symlinks, `./x` vs `x`), or, when the output does not exist yet, the same canonical
 * path. Originals are never touched. Any other existing file is refused too (E_FILE_EXISTS) unless
 * `overwrite`: a second merge into `merged.safetensors`, a convert beside a file of that name or the
 * web page's output box pointed at a run's LoRA would replace a file the user owns (export-script and
 * init refuse the same way).
 */
export async function assertOutputIsNew(params: { output: string; inputs: readonly string[]; field?: string; overwrite?: boolean; hint?: string }): Promise<void> {
  const outId = await identity(params.output);
  const outPath = await canonical(params.output);
  for (const input of params.inputs) {
    const same = (outId !== undefined && outId === (await identity(input))) || outPath === (await canonical(input));
    if (same) {
      throw new LoraspecError("E_USAGE", `the output ${params.output} is the input ${input}: it would be overwritten`, {
        file: params.output,
        field: params.field ?? "--output",
        hint: "Pass -o with another file name; loraspec never modifies its inputs.",
      });
    }
  }
  if (outId !== undefined && !params.overwrite) {
    throw new LoraspecError("E_FILE_EXISTS", `${params.output} exists`, {
      file: params.output,
      field: params.field ?? "--output",
      hint: params.hint ?? "Pass -o with another file name, or --force to replace it.",
    });
  }
}
