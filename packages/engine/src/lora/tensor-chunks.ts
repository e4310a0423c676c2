import { dtypeBits } from "@loraspec/core/lora/dtype.js";
import type { SafetensorsFile } from "./safetensors-file.js";

// Bytes read per step: a 2 GiB tensor is scanned without holding it in memory.
const CHUNK_BYTES = 4 << 20;

let scratchBuf = new Uint8Array(0);
/** One reused read buffer (reads are synchronous and each chunk is visited before the next read). */
function scratch(bytes: number): Uint8Array {
  if (scratchBuf.byteLength < bytes) scratchBuf = new Uint8Array(Math.max(bytes, 1 << 16));
  return scratchBuf;
}

/** Calls visit with a tensor's bytes in chunks of whole elements (the view is reused: copy what must outlive the call). */
export function forEachChunk(file: SafetensorsFile, key: string, visit: (bytes: Uint8Array) => void): void {
  const t = file.tensor(key);
  const elem = Math.max(1, dtypeBits(t.dtype) / 8);
  const step = Math.max(elem, CHUNK_BYTES - (CHUNK_BYTES % elem));
  const buf = scratch(Math.min(step, t.end - t.begin));
  for (let at = t.begin; at < t.end; at += step) {
    const bytes = buf.subarray(0, Math.min(step, t.end - at));
    file.readIntoSync(at, bytes);
    visit(bytes);
  }
}
