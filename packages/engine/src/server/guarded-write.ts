import { LoraspecError } from "@loraspec/core/errors.js";
import type { FileLimit } from "../fs/file-limits.js";
import { readSmallText } from "../fs/read-small-file.js";

/**
 * `base` from a write request: the file's text as the page read it (`null`: it did not exist).
 * Required, so no client can overwrite what it never saw.
 */
export function requireBase(value: unknown, field: string): string | null {
  if (value === null) return null;
  if (typeof value === "string") return value;
  throw new LoraspecError("E_USAGE", `"${field}" must be the file's text as you read it (null: no file yet), so a newer file is never overwritten.`, { field });
}

/** The file's text now, or null when there is none; one over its kind's limit is refused unread (E_FILE_TOO_LARGE). */
async function currentText(file: string, rel: string, limit: FileLimit): Promise<string | null> {
  try {
    return await readSmallText({ file, limit, shown: rel });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/**
 * Refuses a write from the page when the file changed on disk since the page read it (another
 * editor, `loraspec init --force`, a second tab): E_FILE_CHANGED naming the file, nothing written.
 * Call for every file of a request before writing any, then write each with `atomicWrite`.
 */
export async function checkUnchanged(params: {
  file: string;
  rel: string;
  base: string | null;
  /** The kind of file (FILE_LIMITS.contract, .caption): one larger was never what the page read. */
  limit: FileLimit;
  field?: string;
  asShown?: (text: string) => string;
}): Promise<void> {
  const now = await currentText(params.file, params.rel, params.limit);
  // `asShown`: the text as the page was given it (a caption's BOM is dropped when it is read: caption-sidecar.ts).
  if ((now === null || !params.asShown ? now : params.asShown(now)) === params.base) return;
  throw new LoraspecError("E_FILE_CHANGED", `${params.rel} changed on disk since the page read it; nothing was written.`, {
    file: params.rel,
    field: params.field,
    hint: "Reload to see the file as it is now, then make the edit again.",
  });
}
