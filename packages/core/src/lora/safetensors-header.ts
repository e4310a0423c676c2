import { LoraspecError } from "../errors.js";
import { type Dtype, dtypeBits } from "./dtype.js";
import { HeaderJsonError, parseHeaderJson, type U64 } from "./header-json.js";

/**
 * Parses and validates a safetensors header exactly like the reference reader
 * (huggingface/safetensors tensor.rs `read_metadata` + `Metadata::validate`, serde_json's rules
 * in header-json.ts). See reference/lora-formats.md §1.3. Pure.
 */
export const MAX_HEADER_SIZE = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte offsets relative to the data section: [begin, end). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Header byte length N (the data section starts at 8 + N). */
  headerLength: number;
  dataStart: number;
  metadata: Record<string, string>;
  /** Sorted by data offset. */
  tensors: TensorInfo[];
}

/** The reference error names, reported in `details.reason`. */
export type SafetensorsErrorReason =
  | "HeaderTooSmall"
  | "HeaderTooLarge"
  | "InvalidHeaderLength"
  | "InvalidHeader"
  | "InvalidHeaderDeserialization"
  | "InvalidOffset"
  | "ValidationOverflow"
  | "MisalignedSlice"
  | "TensorInvalidInfo"
  | "MetadataIncompleteBuffer";

export function safetensorsError(
  reason: SafetensorsErrorReason,
  message: string,
  file: string | undefined,
  tensor?: string,
): LoraspecError {
  // The tensor is named once, in `field` (the CLI prints "file: field: message").
  return new LoraspecError("E_SAFETENSORS_INVALID", message, {
    file,
    field: tensor === undefined ? undefined : `tensor "${tensor}"`,
    hint: "The file is not a valid safetensors file; re-download or re-export it.",
    details: { reason, tensor },
  });
}

/** Reads the 8-byte little-endian header length; rejects lengths the reference would. */
export function parseHeaderLength(first8: Uint8Array, fileSize: number, file?: string): number {
  if (first8.length < 8 || fileSize < 8) throw safetensorsError("HeaderTooSmall", "header too small", file);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) throw safetensorsError("HeaderTooLarge", `header too large (${n} bytes; the limit is ${MAX_HEADER_SIZE})`, file);
  const len = Number(n);
  if (8 + len > fileSize) throw safetensorsError("InvalidHeaderLength", `invalid header length ${len}: the file has only ${fileSize} bytes`, file);
  return len;
}

/**
 * Validates header bytes (the N bytes after the length) against the file size, with the
 * reference's JSON rules (header-json.ts) and its `Metadata::validate` arithmetic in unsigned
 * 64-bit integers (checked multiplication, as Rust's `usize::checked_mul`). Never allocates in
 * proportion to claimed shapes or offsets.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, file?: string): SafetensorsHeader {
  const headerLength = headerBytes.length;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw safetensorsError("InvalidHeader", "invalid UTF-8 in header", file);
  }
  let parsed: ReturnType<typeof parseHeaderJson>;
  try {
    parsed = parseHeaderJson(text);
  } catch (error) {
    if (!(error instanceof HeaderJsonError)) throw error;
    throw safetensorsError("InvalidHeaderDeserialization", `invalid JSON in header: ${error.message}`, file, error.tensor);
  }
  const entries = parsed.entries.sort((a, b) => cmp(a.offsets[0], b.offsets[0]) || cmp(a.offsets[1], b.offsets[1]));
  const tensors: TensorInfo[] = [];
  let start: U64 = 0;
  for (const t of entries) {
    const [begin, end] = t.offsets;
    if (begin !== start || end < begin) throw safetensorsError("InvalidOffset", "invalid offset", file, t.name);
    let elements: U64 | undefined = 1;
    for (const d of t.shape) if (elements !== undefined) elements = mulU64(elements, d);
    const bits = elements === undefined ? undefined : mulU64(elements, dtypeBits(t.dtype));
    if (bits === undefined) throw safetensorsError("ValidationOverflow", "overflow computing buffer size from shape and/or element type", file, t.name);
    if (Number(BigInt(bits) % 8n) !== 0) throw safetensorsError("MisalignedSlice", "the tensor's bit size is not a whole number of bytes", file, t.name);
    const size = BigInt(bits) / 8n;
    if (BigInt(end) - BigInt(begin) !== size) {
      throw safetensorsError("TensorInvalidInfo", `invalid shape, data type, or offset (${end}-${begin} bytes for ${t.dtype} ${JSON.stringify(t.shape.map(String))})`, file, t.name);
    }
    start = end;
    tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape.map(Number), begin: Number(begin), end: Number(end) });
  }
  if (BigInt(start) + 8n + BigInt(headerLength) !== BigInt(fileSize)) {
    throw safetensorsError(
      "MetadataIncompleteBuffer",
      `incomplete metadata, file not fully covered (tensors end at ${BigInt(start) + 8n + BigInt(headerLength)}, file has ${fileSize} bytes)`,
      file,
    );
  }
  return { headerLength, dataStart: 8 + headerLength, metadata: parsed.metadata, tensors };
}

function cmp(a: U64, b: U64): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const U64_MAX = 2n ** 64n - 1n;

/** a * b in unsigned 64-bit arithmetic; undefined on overflow. Numbers while the product is safe. */
function mulU64(a: U64, b: U64): U64 | undefined {
  if (typeof a === "number" && typeof b === "number") {
    const p = a * b;
    if (Number.isSafeInteger(p)) return p;
  }
  const p = BigInt(a) * BigInt(b);
  return p > U64_MAX ? undefined : p;
}
