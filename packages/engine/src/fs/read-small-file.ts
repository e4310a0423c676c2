import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { FileLimit } from "./file-limits.js";
import { formatBytes } from "./format-bytes.js";

/** What reading at most N bytes of a path gave. */
export type BoundedRead =
  | { kind: "file"; bytes: Buffer; /** the file's size as stat saw it */ size: number; truncated: boolean }
  | { kind: "folder" }
  /** A FIFO, socket or device (`/dev/zero` never ends): never read. */
  | { kind: "special" };

/** How readAtMost reads a file over `maxBytes`. */
export interface ReadAtMostOptions {
  /**
   * All of the file or none of it: one over `maxBytes` is not read at all (`bytes` empty,
   * `truncated` true), for callers that refuse it anyway (a limit decided by the stat alone).
   */
  whole?: boolean;
}

/** Opened non-blocking: a FIFO planted where a file should be must not hang the process. */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

/** How many bytes to read of a file of `size`: none when `whole` and over the limit. */
function wantOf(size: number, maxBytes: number, options: ReadAtMostOptions): number {
  return options.whole && size > maxBytes ? 0 : Math.min(size, maxBytes);
}

/**
 * Reads at most `maxBytes` of a file, sized by a stat of the open handle (the file stat saw is the
 * one read), so a huge file costs no more than a small one. Opened non-blocking: a FIFO planted
 * where a file should be must not hang the process. Errors opening it (ENOENT, EACCES) are Node's.
 */
export async function readAtMost(file: string, maxBytes: number, options: ReadAtMostOptions = {}): Promise<BoundedRead> {
  let handle;
  try {
    handle = await open(file, OPEN_FLAGS);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EISDIR") return { kind: "folder" };
    throw error;
  }
  try {
    const info = await handle.stat();
    if (info.isDirectory()) return { kind: "folder" };
    if (!info.isFile()) return { kind: "special" };
    const want = wantOf(info.size, maxBytes, options);
    const buf = Buffer.alloc(want);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await handle.read(buf, got, want - got, got);
      if (bytesRead === 0) break; // shrank since the stat
      got += bytesRead;
    }
    return { kind: "file", bytes: buf.subarray(0, got), size: info.size, truncated: info.size > maxBytes };
  } finally {
    await handle.close();
  }
}

/** readAtMost for synchronous callers (run-store reconciliation reads run folders in one pass). */
export function readAtMostSync(file: string, maxBytes: number, options: ReadAtMostOptions = {}): BoundedRead {
  let fd: number;
  try {
    fd = openSync(file, OPEN_FLAGS);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EISDIR") return { kind: "folder" };
    throw error;
  }
  try {
    const info = fstatSync(fd);
    if (info.isDirectory()) return { kind: "folder" };
    if (!info.isFile()) return { kind: "special" };
    const want = wantOf(info.size, maxBytes, options);
    const buf = Buffer.alloc(want);
    let got = 0;
    while (got < want) {
      const bytesRead = readSync(fd, buf, got, want - got, got);
      if (bytesRead === 0) break; // shrank since the stat
      got += bytesRead;
    }
    return { kind: "file", bytes: buf.subarray(0, got), size: info.size, truncated: info.size > maxBytes };
  } finally {
    closeSync(fd);
  }
}

/** E_FILE_TOO_LARGE for a file above its kind's limit, naming it as the user knows it. */
export function fileTooLarge(params: { shown: string; size: number; limit: FileLimit; field?: string }): LoraspecError {
  const { shown, size, limit } = params;
  return new LoraspecError("E_FILE_TOO_LARGE", `${shown} is ${formatBytes(size)}, more than a ${limit.what} can be (at most ${formatBytes(limit.bytes)}); it was not read`, {
    file: shown,
    field: params.field,
    hint: `a ${limit.what} is a few KB of text: check that this is the right file, or replace it`,
    details: { size, limit: limit.bytes, source: limit.source },
  });
}

/** A Node-style error, so callers map a folder or a device as they map readFile's errors. */
export function notAFile(file: string, kind: "folder" | "special"): NodeJS.ErrnoException {
  const code = kind === "folder" ? "EISDIR" : "ENOTREG";
  const what = kind === "folder" ? "a folder" : "not a regular file (a pipe, socket or device)";
  return Object.assign(new Error(`${code}: ${what}, not read: '${file}'`), { code, path: file });
}

/**
 * The whole of a small file loraspec parses (a contract, a caption, a model's config.json), or
 * E_FILE_TOO_LARGE naming it when it is over its kind's limit: decided by a stat, before a byte is
 * read. A folder throws EISDIR and a pipe or device ENOTREG (never read); opening errors are Node's.
 */
export async function readSmallFile(params: SmallFileParams): Promise<Buffer> {
  return wholeOrThrow(params, await readAtMost(params.file, params.limit.bytes, { whole: true }));
}

/** readSmallFile for synchronous callers. */
export function readSmallFileSync(params: SmallFileParams): Buffer {
  return wholeOrThrow(params, readAtMostSync(params.file, params.limit.bytes, { whole: true }));
}

export interface SmallFileParams {
  file: string;
  limit: FileLimit;
  /** The file as the user knows it (relative to the project), in the error. */
  shown?: string;
  field?: string;
}

function wholeOrThrow(params: SmallFileParams, read: BoundedRead): Buffer {
  if (read.kind !== "file") throw notAFile(params.file, read.kind);
  if (read.truncated) throw fileTooLarge({ shown: params.shown ?? params.file, size: read.size, limit: params.limit, field: params.field });
  return read.bytes;
}

/** readSmallFile as UTF-8 text. */
export async function readSmallText(params: SmallFileParams): Promise<string> {
  return (await readSmallFile(params)).toString("utf8");
}

/** readSmallFileSync as UTF-8 text. */
export function readSmallTextSync(params: SmallFileParams): string {
  return readSmallFileSync(params).toString("utf8");
}
