import { readSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { LoraspecError } from "@loraspec/core/errors.js";
import { fsError } from "./file-operands.js";
import { decodeToF32, FLOAT_DTYPES } from "@loraspec/core/lora/dtype.js";
import { parseHeaderLength, parseSafetensorsHeader, type SafetensorsHeader, type TensorInfo } from "@loraspec/core/lora/safetensors-header.js";

/**
 * An open safetensors file read with positioned reads (pread): only the header is read at open,
 * each tensor on demand, so files of any size work (Node's readFile stops at 2 GiB).
 */
export interface SafetensorsFile extends SafetensorsHeader {
  path: string;
  size: number;
  byName: ReadonlyMap<string, TensorInfo>;
  tensor(name: string): TensorInfo;
  /** Raw little-endian bytes of one tensor. */
  readBytes(name: string): Promise<Uint8Array>;
  /** Raw bytes of a byte range of the data section (relative offsets). */
  readRange(begin: number, end: number): Promise<Uint8Array>;
  /**
   * Reads data-section bytes [begin, begin + dest.length) straight into `dest` with synchronous
   * positioned reads: no buffer and no promise per call, for the many small reads of a convert
   * or merge (each is one tensor or a part of one, page-cache speed).
   */
  readIntoSync(begin: number, dest: Uint8Array): void;
  /** One float tensor decoded to f32. */
  readF32(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

export async function openSafetensors(params: { path: string }): Promise<SafetensorsFile> {
  const { path } = params;
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw fsError(error, path) ?? error;
  }
  try {
    const s = await handle.stat();
    // Linux opens a folder for reading; its first read would be EISDIR.
    if (!s.isFile()) throw new LoraspecError("E_USAGE", `${path} ${s.isDirectory() ? "is a folder" : "is not a regular file"}, not a .safetensors file`, { file: path });
    const { size } = s;
    const first = await readAt(handle, 0, Math.min(8, size));
    const n = parseHeaderLength(first, size, path);
    const headerBytes = await readAt(handle, 8, n);
    const header = parseSafetensorsHeader(headerBytes, size, path);
    const byName = new Map(header.tensors.map((t) => [t.name, t]));
    const tensor = (name: string): TensorInfo => {
      const t = byName.get(name);
      if (!t) throw new LoraspecError("E_SAFETENSORS_INVALID", `no tensor "${name}"`, { file: path, details: { reason: "TensorNotFound", tensor: name } });
      return t;
    };
    const readRange = (begin: number, end: number) => readAt(handle, header.dataStart + begin, end - begin);
    const readBytes = (name: string) => {
      const t = tensor(name);
      return readRange(t.begin, t.end);
    };
    const readIntoSync = (begin: number, dest: Uint8Array) => {
      if (begin < 0 || begin + dest.length > size - header.dataStart) throw new LoraspecError("E_INTERNAL", `read past the end of ${path}`);
      let done = 0;
      while (done < dest.length) {
        const n = readSync(handle.fd, dest, done, dest.length - done, header.dataStart + begin + done);
        if (n === 0) throw new LoraspecError("E_SAFETENSORS_INVALID", "file changed while reading (unexpected end)", { file: path, details: { reason: "IoError" } });
        done += n;
      }
    };
    return {
      ...header,
      readIntoSync,
      path,
      size,
      byName,
      tensor,
      readBytes,
      readRange,
      async readF32(name) {
        const t = tensor(name);
        if (!FLOAT_DTYPES.has(t.dtype)) {
          throw new LoraspecError("E_LORA_FORMAT_UNKNOWN", `tensor "${name}" is ${t.dtype}, not a float tensor`, { file: path, field: `tensor "${name}"` });
        }
        return decodeToF32(t.dtype, await readBytes(name));
      },
      close: () => handle.close(),
    };
  } catch (error) {
    await handle.close().catch(() => {});
    throw error;
  }
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw new LoraspecError("E_SAFETENSORS_INVALID", "file changed while reading (unexpected end)", { details: { reason: "IoError" } });
    done += bytesRead;
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, length);
}
