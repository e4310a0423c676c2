import { createHash, type Hash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { LoraspecError } from "@loraspec/core/errors.js";
import { BackgroundHash } from "./background-hash.js";
import type { OutputTensor, TensorFiller } from "./write-safetensors.js";

// Tensors are assembled into two alternating 8 MiB buffers: one is filled while the other is being
// written, and the same memory is reused for the whole file (fresh pages cost more than copying).
const WRITE_CHUNK = 8 << 20;
// sha256 runs at ~2 GB/s on one core: from this size on, a worker thread hashes each buffer while
// the main thread fills the next (a worker costs ~20 ms to start, more than small files gain).
const BACKGROUND_HASH_BYTES = 64 << 20;
// Every this many bytes written, an fdatasync starts in the background (flushing to disk while the
// rest is assembled) instead of leaving the whole file to the final fsync.
const EARLY_SYNC_BYTES = 64 << 20;

/**
 * The hashes of a file's data section as its bytes stream past: sha256 (inline, or on a worker
 * thread for large files) and the bytes of kohya's legacy-hash window.
 */
export class DataHashes {
  private readonly background: BackgroundHash | undefined;
  private readonly hash: Hash | undefined;
  private readonly legacyParts: Uint8Array[] = [];

  constructor(
    private readonly opts: {
      sha256: boolean;
      /** File position where the data section starts. */
      headerEnd: number;
      dataBytes: number;
      /** The legacy-hash window in data-section offsets, when that hash is wanted. */
      legacy?: { start: number; end: number };
    },
  ) {
    this.background = opts.sha256 && opts.dataBytes >= BACKGROUND_HASH_BYTES ? new BackgroundHash() : undefined;
    this.hash = opts.sha256 && !this.background ? createHash("sha256") : undefined;
  }

  /** Shared memory when a worker hashes the buffers, so they are not copied to it. */
  newBuffer(n: number): Uint8Array {
    return this.background ? new Uint8Array(new SharedArrayBuffer(n)) : new Uint8Array(n);
  }

  /**
   * Hash and legacy-hash the data-section bytes of file range [at, at + bytes.length); with a
   * hashing thread, the promise says when the bytes may be overwritten.
   */
  digest(bytes: Uint8Array, at: number): Promise<unknown> | undefined {
    const { headerEnd, legacy } = this.opts;
    const from = Math.max(0, headerEnd - at);
    if (from >= bytes.length) return undefined;
    const data = from === 0 ? bytes : bytes.subarray(from);
    const d0 = at + from - headerEnd;
    this.hash?.update(data);
    if (legacy && d0 + data.length > legacy.start && d0 < legacy.end) {
      this.legacyParts.push(data.slice(Math.max(legacy.start, d0) - d0, Math.min(legacy.end, d0 + data.length) - d0));
    }
    return this.background?.update(data);
  }

  /** sha256 (hex) of the data section, when it was asked for. */
  async sha256(): Promise<string | undefined> {
    return this.background ? await this.background.digest() : this.hash?.digest("hex");
  }

  /** kohya's legacy hash: the first 8 hex digits of the sha256 of its window. */
  legacyHash(): string {
    return createHash("sha256").update(Buffer.concat(this.legacyParts)).digest("hex").slice(0, 8);
  }

  async close(): Promise<void> {
    await this.background?.close();
  }
}

/**
 * Writes a safetensors file's bytes in order through two reused buffers: one is filled while the
 * other is written (and hashed), with an fdatasync started in the background every EARLY_SYNC_BYTES.
 */
export class TensorStream {
  private readonly bufs: Uint8Array[];
  private readonly inflight: Array<Promise<void> | undefined> = [undefined, undefined];
  private which = 0;
  private buf: Uint8Array;
  private bufStart = 0; // file position of buf[0]
  private used = 0;
  private syncing: Promise<void> | undefined;
  private synced = 0;
  /** Bytes of tensor data taken so far. */
  dataWritten = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly hashes: DataHashes,
    fileSize: number,
  ) {
    this.bufs = [hashes.newBuffer(Math.min(WRITE_CHUNK, fileSize))];
    this.buf = this.bufs[0]!;
  }

  /** The 8-byte little-endian header length and the header text, at the start of the file. */
  async writeHeader(text: Uint8Array): Promise<void> {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(text.length), true);
    this.buf.set(len, 0);
    if (text.length + 8 <= this.buf.length) {
      this.buf.set(text, 8);
      this.used = 8 + text.length;
    } else {
      // A header larger than the buffer (huge metadata): written on its own.
      await this.writeAll(len, 0);
      await this.writeAll(text, 8);
      this.bufStart = 8 + text.length;
    }
  }

  /** The next tensor's `n` bytes: copied or filled into the buffer, or written on their own when larger. */
  async writeTensor(t: OutputTensor, n: number): Promise<void> {
    if (n > this.buf.length) {
      // Larger than a buffer: its own buffer and write.
      await this.flush();
      let bytes = await ownBytes(t, n);
      if (!bytes) await (t.data as TensorFiller).fill((bytes = new Uint8Array(n)));
      await Promise.all([this.hashes.digest(bytes, this.bufStart), this.writeAll(bytes, this.bufStart)]);
      this.bufStart += n;
      this.dataWritten += n;
      return;
    }
    if (this.used + n > this.buf.length) await this.flush();
    const dest = this.buf.subarray(this.used, this.used + n);
    const bytes = await ownBytes(t, n);
    if (bytes) dest.set(bytes);
    else {
      const filled = (t.data as TensorFiller).fill(dest);
      if (filled) await filled;
    }
    this.used += n;
    this.dataWritten += n;
  }

  /** Writes what is buffered and waits for every write (and its hashing) to finish. */
  async finish(): Promise<void> {
    await this.flush();
    await Promise.all(this.inflight);
  }

  /** The background fdatasync under way, if any. */
  syncDone(): Promise<void> | undefined {
    return this.syncing;
  }

  /** On failure: waits until no write or sync is still running (their errors are dropped). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.inflight, this.syncing]);
  }

  private async writeAll(bytes: Uint8Array, at: number): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += (await this.handle.write(bytes, off, bytes.length - off, at + off)).bytesWritten;
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    const out = this.buf.subarray(0, this.used);
    const hashed = this.hashes.digest(out, this.bufStart);
    const written = this.writeAll(out, this.bufStart);
    const writing = hashed ? Promise.all([written, hashed]).then(() => {}) : written;
    writing.catch(() => {}); // awaited below or in the error path; not an unhandled rejection meanwhile
    this.inflight[this.which] = writing;
    this.bufStart += this.used;
    this.used = 0;
    // Fill the other buffer while this one is written; wait for that buffer's own write first.
    this.which ^= 1;
    this.bufs[this.which] ??= this.hashes.newBuffer(this.bufs[0]!.length);
    this.buf = this.bufs[this.which]!;
    const previous = this.inflight[this.which];
    this.inflight[this.which] = undefined;
    await previous;
    // Start writeback of what is written so far, so the final fsync has only the tail left.
    if (!this.syncing && this.bufStart - this.synced >= EARLY_SYNC_BYTES) {
      this.synced = this.bufStart;
      this.syncing = this.handle.datasync().finally(() => (this.syncing = undefined));
      this.syncing.catch(() => {});
    }
  }
}

/** A tensor's bytes when it has its own (an array, or what its producer returns), checked to be `n` long;
 * undefined for a filler, which writes into the caller's buffer. */
async function ownBytes(t: OutputTensor, n: number): Promise<Uint8Array | undefined> {
  if (typeof t.data !== "function" && !ArrayBuffer.isView(t.data)) return undefined;
  const bytes = typeof t.data === "function" ? await t.data() : t.data;
  if (bytes.length !== n) throw new LoraspecError("E_INTERNAL", `tensor "${t.name}" has ${bytes.length} bytes, expected ${n}`);
  return bytes;
}
