import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { splitLines } from "@loraspec/core/parse/split-lines.js";

/** Enough of a log's end to hold a trainer's traceback and the launcher's after it. */
const TAIL_BYTES = 256 * 1024;

/** The last `bytes` of a log file as lines (split on \r and \n); [] when it cannot be read. */
export function readLogTailLines(path: string, bytes = TAIL_BYTES): string[] {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const size = fstatSync(fd).size;
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return splitLines(buffer.toString("utf8"));
  } catch {
    return [];
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
