import { decodeToF32, type Dtype } from "./dtype.js";

export interface NonFiniteCount {
  nan: number;
  inf: number;
}

/**
 * NaN and Inf counts of little-endian tensor bytes, read from the bits where the dtype decodes
 * exactly to f32 (F32, F16, BF16: exponent all ones, mantissa zero for Inf), so a 300 MB LoRA is
 * scanned at memory speed rather than decoded; other float dtypes are decoded to f32 and counted
 * there (an F64 value beyond f32's range counts as Inf, as its decoded value is).
 * `bytes` holds whole elements; an unaligned view is copied first.
 */
export function countNonFinite(dtype: Dtype, bytes: Uint8Array): NonFiniteCount {
  if (bytes.byteOffset % 4 !== 0) bytes = bytes.slice();
  switch (dtype) {
    case "BF16":
      return count16(bytes, 0x7f80, 0x007f);
    case "F16":
      return count16(bytes, 0x7c00, 0x03ff);
    case "F32":
      return count32(bytes);
    default:
      return countDecoded(decodeToF32(dtype, bytes));
  }
}

// Words per block of the branch-free pass; a block with a non-finite value is counted exactly.
const BLOCK = 1024;

/**
 * Two 16-bit values per 32-bit word. With y = ~word & (exponent mask in both halves), a half is
 * non-finite iff its part of y is zero, and (y - 0x00010001) & 0x80008000 is non-zero iff a half of
 * y is zero (each half <= 0x7f80 or 0x7c00, so only a zero half borrows into its top bit).
 */
function count16(bytes: Uint8Array, exp: number, mant: number): NonFiniteCount {
  const c = { nan: 0, inf: 0 };
  const tally = (x: number) => {
    if ((x & exp) !== exp) return;
    if (x & mant) c.nan++;
    else c.inf++;
  };
  const words = Math.floor(bytes.byteLength / 4);
  if (words > 0) {
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset, words);
    const pair = exp | (exp << 16);
    for (let s = 0; s < words; s += BLOCK) {
      const e = Math.min(words, s + BLOCK);
      let acc = 0;
      for (let i = s; i < e; i++) acc |= ((~w[i]! & pair) - 0x00010001) & 0x80008000;
      if (acc === 0) continue;
      for (let i = s; i < e; i++) {
        tally(w[i]! & 0xffff);
        tally(w[i]! >>> 16);
      }
    }
  }
  for (let at = words * 4; at + 1 < bytes.byteLength; at += 2) tally(bytes[at]! | (bytes[at + 1]! << 8));
  return c;
}

/** With y = ~word & 0x7f800000, a value is non-finite iff y is zero, iff (y - 1) has its top bit. */
function count32(bytes: Uint8Array): NonFiniteCount {
  let nan = 0, inf = 0;
  const n = Math.floor(bytes.byteLength / 4);
  const w = new Uint32Array(bytes.buffer, bytes.byteOffset, n);
  for (let s = 0; s < n; s += BLOCK) {
    const e = Math.min(n, s + BLOCK);
    let acc = 0;
    for (let i = s; i < e; i++) acc |= ((~w[i]! & 0x7f800000) - 1) & 0x80000000;
    if (acc === 0) continue;
    for (let i = s; i < e; i++) {
      const x = w[i]!;
      if ((x & 0x7f800000) !== 0x7f800000) continue;
      if (x & 0x007fffff) nan++;
      else inf++;
    }
  }
  return { nan, inf };
}

function countDecoded(v: Float32Array): NonFiniteCount {
  let nan = 0, inf = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (x !== x) nan++;
    else if (x === Infinity || x === -Infinity) inf++;
  }
  return { nan, inf };
}
