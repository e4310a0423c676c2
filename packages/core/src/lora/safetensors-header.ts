import { LoraspecError } from "../errors.js";
import { type Dtype, dtypeBits, isDtype } from "./dtype.js";

/**
 * Parses and validates a safetensors header exactly like the reference reader
 * (huggingface/safetensors tensor.rs `read_metadata` + `Metadata::validate`), plus explicit
 * duplicate-key and metadata-type checks. See reference/lora-formats.md §1.3. Pure.
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
  | "DuplicateKey"
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
  return new LoraspecError("E_SAFETENSORS_INVALID", tensor === undefined ? message : `${message} (tensor "${tensor}")`, {
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
 * Validates header bytes (the N bytes after the length) against the file size.
 * Never allocates in proportion to claimed shapes or offsets.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, file?: string): SafetensorsHeader {
  const headerLength = headerBytes.length;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw safetensorsError("InvalidHeader", "invalid UTF-8 in header", file);
  }
  const duplicate = findDuplicateKey(text);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw safetensorsError("InvalidHeaderDeserialization", `invalid JSON in header: ${(error as Error).message}`, file);
  }
  if (duplicate !== undefined) throw safetensorsError("DuplicateKey", `duplicate key in header`, file, duplicate);
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw safetensorsError("InvalidHeaderDeserialization", "invalid JSON in header: not an object", file);
  }
  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (value === null) continue;
      if (typeof value !== "object" || Array.isArray(value)) {
        throw safetensorsError("InvalidHeaderDeserialization", "invalid JSON in header: __metadata__ is not an object", file);
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") {
          throw safetensorsError("InvalidHeaderDeserialization", `invalid JSON in header: __metadata__ value "${k}" is not a string`, file);
        }
        metadata[k] = v;
      }
      continue;
    }
    tensors.push(parseEntry(name, value, file));
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let start = 0;
  for (const t of tensors) {
    if (t.begin !== start || t.end < t.begin) throw safetensorsError("InvalidOffset", "invalid offset", file, t.name);
    let elements = 1;
    for (const d of t.shape) {
      elements *= d;
      if (!Number.isSafeInteger(elements)) throw safetensorsError("ValidationOverflow", "overflow computing buffer size from shape and/or element type", file, t.name);
    }
    const bits = elements * dtypeBits(t.dtype);
    if (!Number.isSafeInteger(bits)) throw safetensorsError("ValidationOverflow", "overflow computing buffer size from shape and/or element type", file, t.name);
    if (bits % 8 !== 0) throw safetensorsError("MisalignedSlice", "the tensor's bit size is not a whole number of bytes", file, t.name);
    if (t.end - t.begin !== bits / 8) {
      throw safetensorsError("TensorInvalidInfo", `invalid shape, data type, or offset (${t.end - t.begin} bytes for ${t.dtype} ${JSON.stringify(t.shape)})`, file, t.name);
    }
    start = t.end;
  }
  if (start + 8 + headerLength !== fileSize) {
    throw safetensorsError(
      "MetadataIncompleteBuffer",
      `incomplete metadata, file not fully covered (tensors end at ${start + 8 + headerLength}, file has ${fileSize} bytes)`,
      file,
    );
  }
  return { headerLength, dataStart: 8 + headerLength, metadata, tensors };
}

function isUint(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0;
}

function parseEntry(name: string, value: unknown, file: string | undefined): TensorInfo {
  const bad = (why: string) => safetensorsError("InvalidHeaderDeserialization", `invalid JSON in header: ${why}`, file, name);
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad("entry is not an object");
  const { dtype, shape, data_offsets } = value as Record<string, unknown>;
  if (typeof dtype !== "string" || !isDtype(dtype)) throw bad(`unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every(isUint)) throw bad("shape is not an array of non-negative integers");
  if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every(isUint)) throw bad("data_offsets is not [begin, end]");
  const [begin, end] = data_offsets as [number, number];
  if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end)) throw safetensorsError("ValidationOverflow", "offset too large", file, name);
  if (!shape.every((d) => Number.isSafeInteger(d))) throw safetensorsError("ValidationOverflow", "overflow computing buffer size from shape and/or element type", file, name);
  return { name, dtype, shape: shape as number[], begin, end };
}

/**
 * Scans JSON text for a repeated key inside one object (JSON.parse silently keeps the last).
 * Returns the first duplicate key, or undefined. Tolerates invalid JSON (JSON.parse reports it).
 */
function findDuplicateKey(text: string): string | undefined {
  const stack: Array<Set<string> | null> = [];
  let i = 0;
  let expectKey = false;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
      i++;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectKey = false;
      i++;
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
      expectKey = false;
      i++;
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] instanceof Set;
      i++;
    } else if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const raw = text.slice(i, j + 1);
      i = j + 1;
      const top = stack[stack.length - 1];
      if (expectKey && top instanceof Set) {
        let key: string;
        try {
          key = JSON.parse(raw) as string;
        } catch {
          return undefined;
        }
        if (top.has(key)) return key;
        top.add(key);
      }
      expectKey = false;
    } else {
      i++;
    }
  }
  return undefined;
}
