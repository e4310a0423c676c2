import { stat } from "node:fs/promises";
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
 * cannot be opened (permissions) is `unreadable` with the reason. Never throws.
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

/** An error reading an image as an `unreadable` problem: permissions said plainly, else the error's first line. */
export function imageReadProblem(error: unknown): ImageProblem {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM") return { code: "unreadable", severity: "skip", message: "permission denied: loraspec cannot read this file (check its owner and mode)" };
  return { code: "unreadable", severity: "skip", message: String((error as Error).message ?? error).split("\n")[0]! };
}
