import { stat } from "node:fs/promises";
import { dirname, resolve, sep } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import { FULL, IO, ioError } from "../run/io-errors.js";

/**
 * File operands a user names (inspect/convert/merge inputs and -o, init's and export-script's -o, any
 * atomic write), checked before anything is read or written: a folder, an empty name, a path under a
 * file, a FIFO or device, or one the system refuses is a coded error naming the path and the option,
 * never a Node errno with a stack. `noun` says what the file should be (".safetensors file", "contract").
 * E_USAGE: the name cannot be such a file (folder, empty, under a file, not a regular file);
 * E_FILE_NOT_FOUND: an input that is not there; E_IO / E_DISK_FULL: the machine refused (permissions,
 * read-only file system, full disk). The writer and the reader map the same errno codes (fsError),
 * so a path that changes between the check and the use is coded too.
 */

/** errno codes that say the name itself is unusable as a file. */
const USAGE: Record<string, (noun: string) => string> = {
  EISDIR: (noun) => `is a folder, not a ${noun}`,
  ENOTDIR: () => "is under a file, not a folder",
  ELOOP: () => "is a symlink loop",
  ENAMETOOLONG: () => "is too long a name",
  EEXIST: () => "is under a file, not a folder",
  ENOTEMPTY: (noun) => `is a folder, not a ${noun}`,
};

/** Every errno fsError codes (USAGE's, ENOENT, permissions, then io-errors.ts's full disk and I/O): the operand errors' table test walks it. */
export const OPERAND_ERRNOS: readonly string[] = [...Object.keys(USAGE), "ENOENT", "EACCES", "EPERM", ...FULL, ...IO];

const hintFor = (noun: string) => `Name a ${noun}.`;

/** A Node file-system error on `path` (given as `field`) as a coded error; undefined when it is not one. */
export function fsError(error: unknown, path: string, field?: string, noun = "file"): LoraspecError | undefined {
  if (error instanceof LoraspecError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== "string") return undefined;
  if (code === "ENOENT") return new LoraspecError("E_FILE_NOT_FOUND", `no such file: ${path}`, { file: path, field, cause: error });
  const what = USAGE[code];
  if (what) return new LoraspecError("E_USAGE", `${path === "" ? "an empty name" : path} ${what(noun)}`, { file: path || undefined, field, hint: hintFor(noun), details: { errno: code }, cause: error });
  if (code === "EACCES" || code === "EPERM") {
    return new LoraspecError("E_IO", `${path} cannot be read or written (permissions)`, { file: path, field, hint: "Check the file's and its folder's permissions.", details: { errno: code }, cause: error });
  }
  const io = ioError(error, { path });
  return io ? new LoraspecError(io.code, io.message, { file: path, field, hint: io.hint, details: io.details, cause: error }) : undefined;
}

function usage(path: string, field: string, what: string, noun: string): LoraspecError {
  return new LoraspecError("E_USAGE", path.trim() === "" ? `${field} is an empty name` : `${path} ${what}`, { file: path || undefined, field, hint: hintFor(noun) });
}

/** An input file: a regular file that exists. */
export async function checkInputFile(path: string, field: string, noun = "file"): Promise<void> {
  if (path.trim() === "") throw usage(path, field, "", noun);
  let s;
  try {
    s = await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOTDIR") {
      throw new LoraspecError("E_FILE_NOT_FOUND", `no such file: ${path} (a part of it is a file, not a folder)`, { file: path, field });
    }
    throw fsError(error, path, field, noun) ?? error;
  }
  if (s.isDirectory()) throw usage(path, field, `is a folder, not a ${noun}`, noun);
  if (!s.isFile()) throw usage(path, field, "is not a regular file (a FIFO, socket or device)", noun);
}

/**
 * An output file: a name (not empty, not ending in a separator), not an existing folder or special
 * file, and not under a file (its nearest existing ancestor is a folder). Missing folders are made
 * by the writer. Whether an existing file may be replaced is same-file.ts's question.
 */
export async function checkOutputFile(path: string, field = "--output", noun = "file"): Promise<void> {
  if (path.trim() === "") throw usage(path, field, "", noun);
  if (path.endsWith(sep) || path.endsWith("/") || /(^|[\\/])\.{1,2}$/.test(path)) throw usage(path, field, "names a folder, not a file", noun);
  const s = await statOrUndefined(path, field, noun);
  if (s?.isDirectory()) throw usage(path, field, `is a folder, not a ${noun}`, noun);
  if (s && !s.isFile()) throw usage(path, field, "is not a regular file (a FIFO, socket or device)", noun);
  if (s) return;
  for (let dir = dirname(resolve(path)); ; dir = dirname(dir)) {
    const d = await statOrUndefined(dir, field, noun);
    if (d && !d.isDirectory()) throw usage(path, field, `is under ${dir}, which is a file, not a folder`, noun);
    if (d || dirname(dir) === dir) return;
  }
}

async function statOrUndefined(path: string, field: string, noun: string) {
  try {
    return await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ENOTDIR") throw usage(path, field, "is under a file, not a folder", noun);
    throw fsError(error, path, field, noun) ?? error;
  }
}
