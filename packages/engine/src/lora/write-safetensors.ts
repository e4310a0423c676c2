import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Worker } from "node:worker_threads";
import { LoraspecError } from "@loraspec/core/errors.js";
import { type Dtype, dtypeBits, dtypeOrder } from "@loraspec/core/lora/dtype.js";
import { MAX_HEADER_SIZE } from "@loraspec/core/lora/safetensors-header.js";

/** Writes a tensor's bytes into `dest` (exactly its byte length, aligned to its element size). */
export interface TensorFiller {
  fill(dest: Uint8Array): void | Promise<void>;
}

export interface OutputTensor {
  name: string;
  dtype: Dtype;
  shape: number[];
  /**
   * The bytes, a producer the writer calls when it reaches this tensor, or a filler that writes
   * straight into the writer's output buffer (no buffer per tensor). One tensor at a time: bounded memory.
   */
  data: Uint8Array | (() => Promise<Uint8Array> | Uint8Array) | TensorFiller;
}

export interface WriteResult {
  bytes: number;
  /** sha256 (hex) of the data section (what `sshs_model_hash` and `modelspec.hash_sha256` hold), when computed. */
  dataSha256?: string;
}

/** Metadata keys whose values are hashes of the tensors; recomputed whenever they are present. */
const HASH_KEYS = { model: "sshs_model_hash", legacy: "sshs_legacy_hash", modelspec: "modelspec.hash_sha256" } as const;
// Tensors are assembled into two alternating 8 MiB buffers: one is filled while the other is being
// written, and the same memory is reused for the whole file (fresh pages cost more than copying).
const WRITE_CHUNK = 8 << 20;
// sha256 runs at ~2 GB/s on one core: from this size on, a worker thread hashes each buffer while
// the main thread fills the next (a worker costs ~20 ms to start, more than small files gain).
const BACKGROUND_HASH_BYTES = 64 << 20;
// Every this many bytes written, an fdatasync starts in the background (flushing to disk while the
// rest is assembled) instead of leaving the whole file to the final fsync.
const EARLY_SYNC_BYTES = 64 << 20;

const HASHER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const hash = require("node:crypto").createHash("sha256");
parentPort.on("message", (m) => {
  if (m.bytes) {
    hash.update(m.bytes);
    parentPort.postMessage({ done: m.id });
  } else {
    parentPort.postMessage({ digest: hash.digest("hex") });
  }
});`;

/** sha256 of a stream of buffers, computed in a worker thread; buffers are reusable once update resolves. */
class BackgroundHash {
  private readonly worker = new Worker(HASHER_SOURCE, { eval: true });
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private next = 0;
  private failed: unknown;

  constructor() {
    this.worker.on("message", (m: { done?: number; digest?: string }) => {
      const id = m.digest !== undefined ? -1 : m.done!;
      const w = this.waiting.get(id);
      this.waiting.delete(id);
      w?.resolve(m.digest);
    });
    const fail = (error: unknown) => {
      this.failed ??= error;
      for (const w of this.waiting.values()) w.reject(error);
      this.waiting.clear();
    };
    this.worker.on("error", fail);
    this.worker.on("exit", () => fail(new LoraspecError("E_INTERNAL", "the hashing thread stopped")));
  }

  private ask(id: number, message: unknown): Promise<unknown> {
    if (this.failed) return Promise.reject(this.failed);
    const p = new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    this.worker.postMessage(message);
    return p;
  }

  /** Hashes bytes (shared memory is not copied; other bytes are). */
  update(bytes: Uint8Array): Promise<unknown> {
    const id = this.next++;
    return this.ask(id, { id, bytes });
  }

  async digest(): Promise<string> {
    return (await this.ask(-1, {})) as string;
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners("exit");
    await this.worker.terminate();
  }
}

/** Sorts like the reference writer: dtype descending in enum order, then name ascending. */
export function referenceOrder<T extends { name: string; dtype: Dtype }>(tensors: readonly T[]): T[] {
  return [...tensors].sort((a, b) => dtypeOrder(b.dtype) - dtypeOrder(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function byteLength(t: { dtype: Dtype; shape: number[] }): number {
  return (t.shape.reduce((a, b) => a * b, 1) * dtypeBits(t.dtype)) / 8;
}

/** The header JSON padded with spaces to a multiple of 8, as the reference writer emits it. */
function headerJson(ordered: OutputTensor[], metadata: Record<string, string> | undefined): { text: Uint8Array; total: number } {
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) obj.__metadata__ = metadata;
  let offset = 0;
  for (const t of ordered) {
    const n = byteLength(t);
    obj[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  const raw = new TextEncoder().encode(JSON.stringify(obj));
  const padded = Math.ceil(raw.length / 8) * 8;
  const text = new Uint8Array(padded).fill(0x20);
  text.set(raw);
  return { text, total: offset };
}

/**
 * Writes a safetensors file exactly as the reference writer lays it out (sorted, contiguous,
 * header space-padded to 8 bytes), streaming tensor by tensor through two reused 8 MiB buffers
 * (one filled while the other is written) to a temp file that is fsynced and renamed over `path`. `sshs_model_hash`, `sshs_legacy_hash` and `modelspec.hash_sha256` in
 * `metadata` are recomputed from the bytes written (lora-formats.md §2e).
 */
export async function writeSafetensors(params: {
  path: string;
  tensors: OutputTensor[];
  metadata?: Record<string, string>;
  signal?: AbortSignal;
  /** Hash the data section even when the metadata holds no hash keys (it costs ~0.5 s per GB). */
  hash?: boolean;
}): Promise<WriteResult> {
  const { path, signal } = params;
  const names = new Set<string>();
  for (const t of params.tensors) {
    if (names.has(t.name)) throw new LoraspecError("E_INTERNAL", `duplicate output tensor "${t.name}"`);
    if (t.name === "__metadata__") throw new LoraspecError("E_INTERNAL", `"__metadata__" is not a tensor name`);
    names.add(t.name);
    if (!Number.isInteger(byteLength(t))) throw new LoraspecError("E_INTERNAL", `tensor "${t.name}" is not a whole number of bytes`);
  }
  const ordered = referenceOrder(params.tensors);
  const metadata = params.metadata ? { ...params.metadata } : undefined;
  const want = {
    model: metadata?.[HASH_KEYS.model] !== undefined,
    legacy: metadata?.[HASH_KEYS.legacy] !== undefined,
    modelspec: metadata?.[HASH_KEYS.modelspec] !== undefined,
  };
  // Fixed-width placeholders so the header length does not change when the real hashes go in.
  if (metadata && want.model) metadata[HASH_KEYS.model] = "0".repeat(64);
  if (metadata && want.legacy) metadata[HASH_KEYS.legacy] = "0".repeat(8);
  if (metadata && want.modelspec) metadata[HASH_KEYS.modelspec] = `0x${"0".repeat(64)}`;
  const { text, total } = headerJson(ordered, metadata);
  if (text.length > MAX_HEADER_SIZE) throw new LoraspecError("E_SAFETENSORS_INVALID", "header too large to write", { file: path, details: { reason: "HeaderTooLarge" } });

  // kohya's legacy hash covers file bytes [1 MiB, 1 MiB + 64 KiB) of the file saved with only ss_* metadata.
  const legacyStart = 0x100000 - 8 - referenceHeaderLength(ordered, metadata);
  const legacyEnd = legacyStart + 0x10000;
  const legacyParts: Uint8Array[] = [];

  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(tmp, "wx");
  const hashing = want.model || want.modelspec || params.hash;
  const background = hashing && total >= BACKGROUND_HASH_BYTES ? new BackgroundHash() : undefined;
  const hash = hashing && !background ? createHash("sha256") : undefined;
  const headerEnd = 8 + text.length;
  const fileSize = headerEnd + total;
  // Shared memory when a worker hashes the buffers, so they are not copied to it.
  const newBuffer = (n: number) => (background ? new Uint8Array(new SharedArrayBuffer(n)) : new Uint8Array(n));
  const bufs = [newBuffer(Math.min(WRITE_CHUNK, fileSize))];
  const inflight: Array<Promise<void> | undefined> = [undefined, undefined];
  let which = 0;
  let buf = bufs[0]!;
  let bufStart = 0; // file position of buf[0]
  let used = 0;
  const writeAll = async (bytes: Uint8Array, at: number) => {
    let off = 0;
    while (off < bytes.length) off += (await handle.write(bytes, off, bytes.length - off, at + off)).bytesWritten;
  };
  // Hash and legacy-hash the data-section bytes of file range [at, at + bytes.length); with a
  // hashing thread, the promise says when the bytes may be overwritten.
  const digest = (bytes: Uint8Array, at: number): Promise<unknown> | undefined => {
    const from = Math.max(0, headerEnd - at);
    if (from >= bytes.length) return undefined;
    const data = from === 0 ? bytes : bytes.subarray(from);
    const d0 = at + from - headerEnd;
    hash?.update(data);
    if (want.legacy && d0 + data.length > legacyStart && d0 < legacyEnd) {
      legacyParts.push(data.slice(Math.max(legacyStart, d0) - d0, Math.min(legacyEnd, d0 + data.length) - d0));
    }
    return background?.update(data);
  };
  const flush = async () => {
    if (used === 0) return;
    const out = buf.subarray(0, used);
    const hashed = digest(out, bufStart);
    const written = writeAll(out, bufStart);
    const writing = hashed ? Promise.all([written, hashed]).then(() => {}) : written;
    writing.catch(() => {}); // awaited below or in the error path; not an unhandled rejection meanwhile
    inflight[which] = writing;
    bufStart += used;
    used = 0;
    // Fill the other buffer while this one is written; wait for that buffer's own write first.
    which ^= 1;
    bufs[which] ??= newBuffer(bufs[0]!.length);
    buf = bufs[which]!;
    const previous = inflight[which];
    inflight[which] = undefined;
    await previous;
    // Start writeback of what is written so far, so the final fsync has only the tail left.
    if (!syncing && bufStart - synced >= EARLY_SYNC_BYTES) {
      synced = bufStart;
      syncing = handle.datasync().finally(() => (syncing = undefined));
      syncing.catch(() => {});
    }
  };
  let syncing: Promise<void> | undefined;
  let synced = 0;
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(text.length), true);
    buf.set(len, 0);
    if (text.length + 8 <= buf.length) {
      buf.set(text, 8);
      used = headerEnd;
    } else {
      // A header larger than the buffer (huge metadata): written on its own.
      await writeAll(len, 0);
      await writeAll(text, 8);
      bufStart = headerEnd;
    }
    let dataOffset = 0;
    for (const t of ordered) {
      signal?.throwIfAborted();
      const n = byteLength(t);
      if (n > buf.length) {
        // Larger than a buffer: its own buffer and write.
        await flush();
        let bytes: Uint8Array;
        if (typeof t.data === "function") bytes = await t.data();
        else if (ArrayBuffer.isView(t.data)) bytes = t.data;
        else await t.data.fill((bytes = new Uint8Array(n)));
        if (bytes.length !== n) throw new LoraspecError("E_INTERNAL", `tensor "${t.name}" has ${bytes.length} bytes, expected ${n}`);
        await Promise.all([digest(bytes, bufStart), writeAll(bytes, bufStart)]);
        bufStart += n;
        dataOffset += n;
        continue;
      }
      if (used + n > buf.length) await flush();
      const dest = buf.subarray(used, used + n);
      if (typeof t.data === "function" || ArrayBuffer.isView(t.data)) {
        const bytes = typeof t.data === "function" ? await t.data() : t.data;
        if (bytes.length !== n) throw new LoraspecError("E_INTERNAL", `tensor "${t.name}" has ${bytes.length} bytes, expected ${n}`);
        dest.set(bytes);
      } else {
        const filled = t.data.fill(dest);
        if (filled) await filled;
      }
      used += n;
      dataOffset += n;
    }
    await flush();
    await Promise.all(inflight);
    if (dataOffset !== total) throw new LoraspecError("E_INTERNAL", "data size mismatch while writing");
    const dataSha256 = background ? await background.digest() : hash?.digest("hex");
    if (metadata && (want.model || want.legacy || want.modelspec)) {
      if (want.model) metadata[HASH_KEYS.model] = dataSha256!;
      if (want.modelspec) metadata[HASH_KEYS.modelspec] = `0x${dataSha256!}`;
      if (want.legacy) metadata[HASH_KEYS.legacy] = createHash("sha256").update(Buffer.concat(legacyParts)).digest("hex").slice(0, 8);
      const real = headerJson(ordered, metadata).text;
      if (real.length !== text.length) throw new LoraspecError("E_INTERNAL", "header length changed while filling in hashes");
      await handle.write(real, 0, real.length, 8);
    }
    await syncing;
    await handle.sync();
    await handle.close();
    await rename(tmp, path);
    await syncDir(dir);
    return { bytes: 8 + text.length + total, dataSha256 };
  } catch (error) {
    await Promise.allSettled([...inflight, syncing]);
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw error;
  } finally {
    await background?.close();
  }
}

/** Padded header length of `safetensors.torch.save(tensors, {ss_* metadata only})`, as kohya hashes it. */
function referenceHeaderLength(ordered: OutputTensor[], metadata: Record<string, string> | undefined): number {
  const ss: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata ?? {})) if (k.startsWith("ss_")) ss[k] = v;
  const obj: Record<string, unknown> = { __metadata__: ss };
  let offset = 0;
  for (const t of ordered) {
    const n = byteLength(t);
    obj[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  return Math.ceil(new TextEncoder().encode(JSON.stringify(obj)).length / 8) * 8;
}

async function syncDir(dir: string): Promise<void> {
  try {
    const h = await open(dir, "r");
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Some filesystems refuse fsync on a folder; the rename is still atomic there.
  }
}
