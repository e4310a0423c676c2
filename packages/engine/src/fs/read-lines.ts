import { constants } from "node:fs";
import { open } from "node:fs/promises";
import type { FileLimit } from "./file-limits.js";
import { notAFile } from "./read-small-file.js";

/** One line of a text file (without its "\n" or "\r\n"), or one over the limit, which was never held. */
export type ReadLine =
  | { kind: "line"; text: string; /** 1-based */ number: number; /** the byte offset just past the line */ end: number }
  | { kind: "too-long"; /** the line's length in bytes */ bytes: number; number: number; end: number };

/** Bytes read per step: few steps through a long log, and no more than this in memory besides the line. */
const CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * The lines of a text file, streamed: one chunk and the current line in memory, so a log that grows
 * with a long run costs no more memory than a short one. A line longer than `limit.bytes` is never
 * built (its bytes are dropped as they pass) and comes back as `too-long` with its length: callers
 * skip it as they skip a malformed line. A last line without "\n" (a torn write) comes back too.
 * node:readline is not used because it holds a whole line, however long, before handing it over.
 * Opened non-blocking and stat'd (read-small-file.ts): a folder is EISDIR, a pipe or device ENOTREG,
 * neither read; errors opening the file (ENOENT) are Node's.
 */
export async function* readLines(params: { file: string; limit: FileLimit }): AsyncGenerator<ReadLine> {
  const handle = await open(params.file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (info.isDirectory()) throw notAFile(params.file, "folder");
    if (!info.isFile()) throw notAFile(params.file, "special");
    const max = params.limit.bytes;
    const buf = Buffer.alloc(CHUNK_BYTES);
    let parts: Buffer[] = [];
    let lineBytes = 0;
    let number = 0;
    let pos = 0;
    const finish = (end: number): ReadLine => {
      number++;
      const line: ReadLine =
        lineBytes > max
          ? { kind: "too-long", bytes: lineBytes, number, end }
          : { kind: "line", text: Buffer.concat(parts).toString("utf8").replace(/\r$/, ""), number, end };
      parts = [];
      lineBytes = 0;
      return line;
    };
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      for (let start = 0; start < bytesRead; ) {
        const nl = chunk.indexOf(0x0a, start);
        const stop = nl < 0 ? bytesRead : nl;
        lineBytes += stop - start;
        // Copied: the buffer is reused by the next read. Past the limit, nothing more is kept.
        if (lineBytes <= max) parts.push(Buffer.from(chunk.subarray(start, stop)));
        else parts = [];
        if (nl < 0) break;
        yield finish(pos + nl + 1);
        start = nl + 1;
      }
      pos += bytesRead;
    }
    if (lineBytes > 0) yield finish(pos);
  } finally {
    await handle.close();
  }
}
