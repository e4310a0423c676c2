import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { isLoraspecError } from "@loraspec/core/errors.js";

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
  let handle;
  try {
    // Non-blocking: a FIFO planted where a log should be must not hang the server.
    handle = await open(full, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") return { kind: "missing" };
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) return { kind: "missing" };
    const want = Math.min(info.size, params.maxBytes);
    const buf = Buffer.alloc(want);
    const { bytesRead } = await handle.read(buf, 0, want, 0);
    const raw = buf.subarray(0, bytesRead);
    return { kind: "text", text: raw.toString("utf8"), truncated: info.size > params.maxBytes, bytes: info.size, raw };
  } finally {
    await handle.close();
  }
}
