import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { notAFile } from "./read-small-file.js";

/** Bytes read per pull: a download costs this much memory however big the file is. */
const STREAM_CHUNK_BYTES = 256 * 1024;

/** An opened file to stream: its size as the open handle's stat saw it, and a byte range of it. */
export interface FileStream {
  /** The whole file's size. */
  size: number;
  /** The bytes start..end (inclusive) of the file; cancelling it (a client that went away) closes the file. */
  stream: ReadableStream<Uint8Array>;
}

/**
 * Opens a file to stream it (a multi-GB LoRA or checkpoint downloaded from the page): pulled a
 * chunk at a time as the reader asks, so nothing is held beyond one chunk. Opened non-blocking and
 * stat'd on the handle (the file stat saw is the one read, as read-small-file.ts): a folder throws
 * EISDIR and a pipe or device ENOTREG, neither read; errors opening it (ENOENT) are Node's.
 * `range(size)` picks the bytes from the size (an HTTP Range); undefined means the whole file and
 * "unsatisfiable" opens no stream. A file that shrank while streaming ends the stream with an error,
 * so a response is cut short rather than short of its Content-Length without a word.
 */
export async function openFileStream(params: {
  file: string;
  range?: (size: number) => { start: number; end: number } | "unsatisfiable" | undefined;
  chunkBytes?: number;
}): Promise<(FileStream & { start: number; end: number }) | { size: number; unsatisfiable: true }> {
  const handle = await open(params.file, constants.O_RDONLY | constants.O_NONBLOCK);
  let handedOver = false;
  try {
    const info = await handle.stat();
    if (info.isDirectory()) throw notAFile(params.file, "folder");
    if (!info.isFile()) throw notAFile(params.file, "special");
    const size = info.size;
    const picked = params.range?.(size);
    if (picked === "unsatisfiable") return { size, unsatisfiable: true };
    const start = picked?.start ?? 0;
    const end = picked?.end ?? size - 1;
    const chunk = params.chunkBytes ?? STREAM_CHUNK_BYTES;
    let pos = start;
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await handle.close().catch(() => {});
    };
    const stream = new ReadableStream<Uint8Array>({
      // Nothing is read ahead of the reader: one pull, one chunk.
      async pull(controller) {
        try {
          if (pos > end) {
            await close();
            controller.close();
            return;
          }
          const buf = Buffer.alloc(Math.min(chunk, end - pos + 1));
          const { bytesRead } = await handle.read(buf, 0, buf.length, pos);
          if (bytesRead === 0) throw new Error(`${params.file} shrank while it was being sent (at byte ${pos} of ${size})`);
          pos += bytesRead;
          controller.enqueue(new Uint8Array(buf.buffer, buf.byteOffset, bytesRead));
        } catch (error) {
          await close();
          controller.error(error);
        }
      },
      async cancel() {
        await close();
      },
    }, { highWaterMark: 0 });
    handedOver = true;
    return { size, start, end, stream };
  } finally {
    if (!handedOver) await handle.close();
  }
}
