import { stat } from "node:fs/promises";
import { LoraspecError } from "@loraspec/core/errors.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { formatBytes } from "../fs/format-bytes.js";
import { readAtMost } from "../fs/read-small-file.js";
import type { ImageProblem } from "./probe-image.js";

/** A dataset image's bytes, or why it is left out unread (with its size, when stat saw one). */
export type ImageRead = { bytes: Buffer } | { size: number; problem: ImageProblem };

/**
 * A dataset image, read whole for the probe (check, prep) only when it is at most FILE_LIMITS.image:
 * a bigger one is an `image-too-large` problem decided by the stat of the open handle, before a byte
 * is read, so a multi-GB file named x.jpg costs nothing. A folder or a pipe is never read; a file that
 * cannot be opened (permissions) is `unreadable` with the reason. Throws only for the machine's own
 * limits (E_IO: too many open files, out of memory: imageReadProblem), never for the file.
 */
export async function readImageFile(path: string): Promise<ImageRead> {
  let read;
  try {
    read = await readAtMost(path, FILE_LIMITS.image.bytes, { whole: true });
  } catch (error) {
    return { size: 0, problem: imageReadProblem(error) };
  }
  if (read.kind === "folder") return { size: 0, problem: { code: "unreadable", severity: "skip", message: "a folder, not an image file" } };
  if (read.kind === "special") return { size: 0, problem: { code: "unreadable", severity: "skip", message: "not a regular file (a socket, pipe or device)" } };
  if (read.truncated) return { size: read.size, problem: imageTooLarge(read.size) };
  return { bytes: read.bytes };
}

/** The `image-too-large` problem of an image of `size` bytes (over FILE_LIMITS.image). */
export function imageTooLarge(size: number): ImageProblem {
  const limit = FILE_LIMITS.image;
  return { code: "image-too-large", severity: "skip", message: `${formatBytes(size)}, more than a ${limit.what} can be (at most ${formatBytes(limit.bytes)}): left out unread` };
}

/** The `image-too-large` problem of the image at `path` when stat says it is over FILE_LIMITS.image (for readers that hand the path on: the caption worker). */
export async function imageSizeProblem(path: string): Promise<ImageProblem | undefined> {
  const size = await stat(path).then((s) => s.size, () => 0);
  return size > FILE_LIMITS.image.bytes ? imageTooLarge(size) : undefined;
}

/** errno codes that are the machine's, not the file's: too many open files, out of memory. */
const NOT_THE_FILE = new Set(["EMFILE", "ENFILE", "ENOMEM"]);

/**
 * An error reading an image as an `unreadable` problem: permissions said plainly, else the error's first
 * line. An error of the machine (NOT_THE_FILE) is no problem of the file: it throws E_IO, so check and
 * prep stop instead of listing every image read at that moment as unreadable.
 */
export function imageReadProblem(error: unknown): ImageProblem {
  const code = (error as NodeJS.ErrnoException).code;
  if (code && NOT_THE_FILE.has(code)) {
    const path = (error as NodeJS.ErrnoException).path;
    throw new LoraspecError("E_IO", `cannot read images: ${String((error as Error).message ?? error).split("\n")[0]} (the machine's limit, not the file)`, {
      file: path,
      hint: "lower --concurrency or raise the open-file limit (ulimit -n), then run again",
      details: { errno: code },
      retryable: true,
      cause: error,
    });
  }
  if (code === "EACCES" || code === "EPERM") return { code: "unreadable", severity: "skip", message: "permission denied: loraspec cannot read this file (check its owner and mode)" };
  return { code: "unreadable", severity: "skip", message: String((error as Error).message ?? error).split("\n")[0]! };
}
