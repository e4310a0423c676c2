import { isLoraspecError } from "@loraspec/core/errors.js";
import { readAtMost } from "./read-small-file.js";

/** What reading a file the server found itself (a caption, a run log, a report's JSON) gave. */
export type ConfinedText =
  | { kind: "text"; text: string; truncated: boolean; bytes: number; raw: Uint8Array }
  | { kind: "missing" }
  | { kind: "outside" };

/**
 * Reads a file whose name the server derived (not one the browser sent), confined like every
 * path the browser sends: `confine` refuses one that is, or links to, something outside the
 * project (a caption that is a symlink to /etc/passwd), and at most `maxBytes` are read, so a
 * huge file costs no more than a small one. Missing or refused files are results, not errors:
 * one hostile file must not take a whole listing down.
 */
export async function readConfinedText(params: {
  file: string;
  confine: (absolute: string) => Promise<string>;
  maxBytes: number;
}): Promise<ConfinedText> {
  let full: string;
  try {
    full = await params.confine(params.file);
  } catch (error) {
    if (isLoraspecError(error) && error.code === "E_PATH_OUTSIDE_PROJECT") return { kind: "outside" };
    throw error;
  }
  let read;
  try {
    read = await readAtMost(full, params.maxBytes);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { kind: "missing" };
    throw error;
  }
  if (read.kind !== "file") return { kind: "missing" };
  return { kind: "text", text: read.bytes.toString("utf8"), truncated: read.truncated, bytes: read.size, raw: read.bytes };
}
