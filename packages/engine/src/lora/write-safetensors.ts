import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import { type Dtype, dtypeBits, dtypeOrder } from "@loraspec/core/lora/dtype.js";
import { MAX_HEADER_SIZE } from "@loraspec/core/lora/safetensors-header.js";
import { fsError } from "./file-operands.js";
import { DataHashes, TensorStream } from "./safetensors-stream.js";

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

/** Which hash keys the metadata holds (their values get recomputed). */
interface WantedHashes {
  model: boolean;
  legacy: boolean;
  modelspec: boolean;
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
  checkTensors(params.tensors);
  const ordered = referenceOrder(params.tensors);
  const { metadata, want } = withHashPlaceholders(params.metadata);
  const { text, total } = headerJson(ordered, metadata);
  if (text.length > MAX_HEADER_SIZE) throw new LoraspecError("E_SAFETENSORS_INVALID", "header too large to write", { file: path, details: { reason: "HeaderTooLarge" } });

  // kohya's legacy hash covers file bytes [1 MiB, 1 MiB + 64 KiB) of the file saved with only ss_* metadata.
  const legacyStart = 0x100000 - 8 - referenceHeaderLength(ordered, metadata);
  const legacy = want.legacy ? { start: legacyStart, end: legacyStart + 0x10000 } : undefined;

  const dir = dirname(path);
  const coded = (error: unknown) => fsError(error, path) ?? error;
  await mkdir(dir, { recursive: true }).catch((error: unknown) => Promise.reject(coded(error)));
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(tmp, "wx").catch((error: unknown) => Promise.reject(coded(error)));
  const headerEnd = 8 + text.length;
  const hashes = new DataHashes({ sha256: Boolean(want.model || want.modelspec || params.hash), headerEnd, dataBytes: total, legacy });
  const stream = new TensorStream(handle, hashes, headerEnd + total);
  try {
    await stream.writeHeader(text);
    for (const t of ordered) {
      signal?.throwIfAborted();
      await stream.writeTensor(t, byteLength(t));
    }
    await stream.finish();
    if (stream.dataWritten !== total) throw new LoraspecError("E_INTERNAL", "data size mismatch while writing");
    const dataSha256 = await hashes.sha256();
    if (metadata && (want.model || want.legacy || want.modelspec)) {
      await rewriteHashes(handle, ordered, metadata, want, text.length, dataSha256, hashes);
    }
    await stream.syncDone();
    await handle.sync();
    await handle.close();
    // A folder (or a path under a file) that appeared after the caller's checks: coded, the temp file removed.
    await rename(tmp, path).catch((error: unknown) => Promise.reject(coded(error)));
    await syncDir(dir);
    return { bytes: 8 + text.length + total, dataSha256 };
  } catch (error) {
    await stream.settle();
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw error;
  } finally {
    await hashes.close();
  }
}

/** Unique names, none `__metadata__`, each a whole number of bytes. */
function checkTensors(tensors: OutputTensor[]): void {
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new LoraspecError("E_INTERNAL", `duplicate output tensor "${t.name}"`);
    if (t.name === "__metadata__") throw new LoraspecError("E_INTERNAL", `"__metadata__" is not a tensor name`);
    names.add(t.name);
    if (!Number.isInteger(byteLength(t))) throw new LoraspecError("E_INTERNAL", `tensor "${t.name}" is not a whole number of bytes`);
  }
}

/** A copy of the metadata with its hash keys set to fixed-width placeholders, and which were there. */
function withHashPlaceholders(original: Record<string, string> | undefined): { metadata: Record<string, string> | undefined; want: WantedHashes } {
  const metadata = original ? { ...original } : undefined;
  const want = {
    model: metadata?.[HASH_KEYS.model] !== undefined,
    legacy: metadata?.[HASH_KEYS.legacy] !== undefined,
    modelspec: metadata?.[HASH_KEYS.modelspec] !== undefined,
  };
  // Fixed-width placeholders so the header length does not change when the real hashes go in.
  if (metadata && want.model) metadata[HASH_KEYS.model] = "0".repeat(64);
  if (metadata && want.legacy) metadata[HASH_KEYS.legacy] = "0".repeat(8);
  if (metadata && want.modelspec) metadata[HASH_KEYS.modelspec] = `0x${"0".repeat(64)}`;
  return { metadata, want };
}

/** Puts the real hashes into the metadata and writes the header again over its placeholder (same length). */
async function rewriteHashes(
  handle: FileHandle,
  ordered: OutputTensor[],
  metadata: Record<string, string>,
  want: WantedHashes,
  headerLength: number,
  dataSha256: string | undefined,
  hashes: DataHashes,
): Promise<void> {
  if (want.model) metadata[HASH_KEYS.model] = dataSha256!;
  if (want.modelspec) metadata[HASH_KEYS.modelspec] = `0x${dataSha256!}`;
  if (want.legacy) metadata[HASH_KEYS.legacy] = hashes.legacyHash();
  const real = headerJson(ordered, metadata).text;
  if (real.length !== headerLength) throw new LoraspecError("E_INTERNAL", "header length changed while filling in hashes");
  await handle.write(real, 0, real.length, 8);
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
