import { LoraspecError } from "../errors.js";
/**
 * safetensors dtype codes and float conversions (pure: runs in the browser too).
 * Codes, bit sizes and the writer's sort order are from huggingface/safetensors tensor.rs
 * `enum Dtype` (declared in increasing alignment order); see reference/lora-formats.md §1.2.
 */
export const DTYPES = [
  "BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0",
  "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64",
] as const;

export type Dtype = (typeof DTYPES)[number];

const BITS: Record<Dtype, number> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32,
  C64: 64, F64: 64, I64: 64, U64: 64,
};

const ORDER = new Map<string, number>(DTYPES.map((d, i) => [d, i]));

export function isDtype(value: string): value is Dtype {
  return ORDER.has(value);
}

export function dtypeBits(dtype: Dtype): number {
  return BITS[dtype];
}

/** Position in the reference enum; the reference writer sorts tensors by this, descending. */
export function dtypeOrder(dtype: Dtype): number {
  return ORDER.get(dtype) ?? 0;
}

/** Float dtypes we can decode to f32. */
export const FLOAT_DTYPES: ReadonlySet<Dtype> = new Set<Dtype>([
  "F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0",
]);

/** Integer and bool dtypes: decoded as their values (a LoRA tensor or alpha stored as integers). */
export const INTEGER_DTYPES: ReadonlySet<Dtype> = new Set<Dtype>(["BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64"]);

/** Whether decodeToF32 can read this dtype as real values (floats, integers, bool). */
export function isDecodable(dtype: Dtype): boolean {
  return FLOAT_DTYPES.has(dtype) || INTEGER_DTYPES.has(dtype);
}

/** The dtype a computed tensor is written in: the source's when we can encode it, else F32 (exact for every decodable 8/16-bit value). */
export function writableDtype(dtype: Dtype): Dtype {
  return ENCODABLE_DTYPES.has(dtype) ? dtype : "F32";
}

/** Float dtypes we can encode from f32 (round-to-nearest-even, as torch does). */
export const ENCODABLE_DTYPES: ReadonlySet<Dtype> = new Set<Dtype>(["F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"]);

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 bits -> bf16 bits, torch c10 round_to_nearest_even (NaN -> quiet NaN). */
export function f32ToBf16Bits(value: number): number {
  f32[0] = value;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

const SCALE_BLOCK = 4096; // elements per pass: the scratch stays in L1/L2
const scaleBits = new Uint32Array(SCALE_BLOCK);
const scaleValues = new Float32Array(scaleBits.buffer);

/** One bf16 value (bits) times f (an f32 value), rounded to nearest even as encodeFromF32 does. */
function scaleBf16Bits(x: number, f: number): number {
  u32[0] = x << 16;
  f32[0] = f32[0]! * f;
  const u = u32[0]!;
  return (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 0x40 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

/** 1 when a finite input x (bf16 bits) gave r outside bf16's range: Inf, or a normal value flushed to zero. */
function leftRange(x: number, r: number): number {
  const rx = r & 0x7f80, sx = x & 0x7f80;
  return (rx === 0x7f80 && sx !== 0x7f80) || ((r & 0x7fff) === 0 && sx !== 0) ? 1 : 0;
}

/**
 * dst[i] = bf16(f32(src[i]) * factor), bit-identical to decodeToF32 -> Math.fround(x * f) ->
 * encodeFromF32 (round to nearest even, NaN quieted), without allocating. src and dst may be the
 * same array (in place); they must have the same length. Returns how many finite values left the
 * range (overflowed to Inf, or a normal value became 0): the caller refuses those.
 */
export function scaleBf16(src: Uint16Array, dst: Uint16Array, factor: number): number {
  if (!LITTLE_ENDIAN) throw new Error("big-endian hosts are not supported");
  if (src.length !== dst.length) throw new Error("scaleBf16: length mismatch");
  const f = Math.fround(factor);
  const e = f === 0 || !Number.isFinite(f) ? NaN : Math.round(Math.log2(Math.abs(f)));
  if (Math.abs(e) < 127 && 2 ** e === Math.abs(f)) return scaleBf16Pow2(src, dst, e, f);
  let bad = 0;
  for (let start = 0; start < src.length; start += SCALE_BLOCK) {
    const n = Math.min(SCALE_BLOCK, src.length - start);
    for (let i = 0; i < n; i++) scaleBits[i] = src[start + i]! << 16;
    for (let i = 0; i < n; i++) scaleValues[i] = scaleValues[i]! * f;
    for (let i = 0; i < n; i++) {
      const u = scaleBits[i]!;
      const x = src[start + i]!;
      const r = (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 0x40 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
      dst[start + i] = r;
      bad += leftRange(x, r);
    }
  }
  return bad;
}

/**
 * Times +-2^e: a normal value whose result is normal too is exact, so only its exponent field
 * changes (and the sign flips for a negative factor); zeros, subnormals, inf, NaN and results that
 * leave the normal range take the rounding path. Two values per step through 32-bit views.
 */
function scaleBf16Pow2(src: Uint16Array, dst: Uint16Array, e: number, f: number): number {
  const lo = Math.max(1, 1 - e), hi = Math.min(254, 254 - e); // input exponents with a normal result
  const sign = f < 0 ? 0x8000 : 0;
  const delta = e << 7;
  let i = 0, bad = 0;
  const slow = (x: number) => {
    const r = scaleBf16Bits(x, f);
    bad += leftRange(x, r);
    return r;
  };
  if (src.byteOffset % 4 === 0 && dst.byteOffset % 4 === 0) {
    const pairs = src.length >>> 1;
    const s32 = new Uint32Array(src.buffer, src.byteOffset, pairs);
    const d32 = new Uint32Array(dst.buffer, dst.byteOffset, pairs);
    const delta2 = delta + delta * 0x10000;
    const sign2 = (sign | (sign << 16)) >>> 0;
    for (let k = 0; k < pairs; k++) {
      const x = s32[k]!;
      const e0 = (x >>> 7) & 0xff, e1 = (x >>> 23) & 0xff;
      d32[k] = e0 >= lo && e0 <= hi && e1 >= lo && e1 <= hi
        ? ((x + delta2) ^ sign2) >>> 0
        : (slow(x & 0xffff) | (slow(x >>> 16) << 16)) >>> 0;
    }
    i = pairs * 2;
  }
  for (; i < src.length; i++) {
    const x = src[i]!;
    const ex = (x >>> 7) & 0xff;
    dst[i] = ex >= lo && ex <= hi ? ((x + delta) ^ sign) & 0xffff : slow(x);
  }
  return bad;
}

/** f32 -> IEEE half bits with round-to-nearest-even; overflow gives +-inf, NaN stays NaN. */
export function f32ToF16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1))) m += 1;
    return sign | m;
  }
  const rest = mant & 0x1fff;
  let h = (e << 10) | (mant >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h += 1; // may carry into the exponent: still correct (inf on overflow)
  return sign | h;
}

/** IEEE half bits -> number (exact). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

let f16Table: Float32Array | undefined;
function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16BitsToF32(i);
  }
  return f16Table;
}

/** Decodes one 8-bit float code by the bit rules of reference/lora-formats.md §1.2. */
function decodeF8(dtype: Dtype, b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  switch (dtype) {
    case "F8_E5M2":
      return f16BitsToF32(b << 8);
    case "F8_E4M3": {
      const e = (b >>> 3) & 0xf, m = b & 7;
      if (e === 0xf && m === 7) return NaN;
      return e === 0 ? sign * m * 2 ** -9 : sign * (1 + m / 8) * 2 ** (e - 7);
    }
    case "F8_E4M3FNUZ": {
      if (b === 0x80) return NaN;
      const e = (b >>> 3) & 0xf, m = b & 7;
      return e === 0 ? sign * m * 2 ** -10 : sign * (1 + m / 8) * 2 ** (e - 8);
    }
    case "F8_E5M2FNUZ": {
      if (b === 0x80) return NaN;
      const e = (b >>> 2) & 0x1f, m = b & 3;
      return e === 0 ? sign * m * 2 ** -17 : sign * (1 + m / 4) * 2 ** (e - 16);
    }
    case "F8_E8M0":
      return b === 0xff ? NaN : 2 ** (b - 127);
    default:
      throw new Error(`not an 8-bit float: ${dtype}`);
  }
}

const f8Tables = new Map<Dtype, Float32Array>();
function f8Lut(dtype: Dtype): Float32Array {
  let t = f8Tables.get(dtype);
  if (!t) {
    t = new Float32Array(256);
    for (let i = 0; i < 256; i++) t[i] = decodeF8(dtype, i);
    f8Tables.set(dtype, t);
  }
  return t;
}

/** Copies bytes to a fresh, aligned buffer when a typed-array view is impossible. */
function aligned(bytes: Uint8Array, size: number): ArrayBuffer {
  if (bytes.byteOffset % size === 0 && bytes.buffer instanceof ArrayBuffer) return bytes.buffer;
  return bytes.slice().buffer;
}

function view<T>(bytes: Uint8Array, size: number, make: (b: ArrayBuffer, off: number, n: number) => T): T {
  const n = bytes.byteLength / size;
  if (bytes.byteOffset % size === 0 && bytes.buffer instanceof ArrayBuffer) return make(bytes.buffer, bytes.byteOffset, n);
  return make(aligned(bytes, size), 0, n);
}

/** Decodes little-endian tensor bytes of a float dtype to f32. */
export function decodeToF32(dtype: Dtype, bytes: Uint8Array): Float32Array {
  if (!LITTLE_ENDIAN) throw new Error("big-endian hosts are not supported");
  switch (dtype) {
    case "F32":
      return view(bytes, 4, (b, o, n) => new Float32Array(b, o, n)).slice();
    case "F64": {
      const src = view(bytes, 8, (b, o, n) => new Float64Array(b, o, n));
      return Float32Array.from(src);
    }
    case "BF16": {
      const src = view(bytes, 2, (b, o, n) => new Uint16Array(b, o, n));
      const out = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
      return new Float32Array(out.buffer);
    }
    case "F16": {
      const src = view(bytes, 2, (b, o, n) => new Uint16Array(b, o, n));
      const lut = f16Lut();
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = lut[src[i]!]!;
      return out;
    }
    case "F8_E4M3":
    case "F8_E5M2":
    case "F8_E4M3FNUZ":
    case "F8_E5M2FNUZ":
    case "F8_E8M0": {
      const lut = f8Lut(dtype);
      const out = new Float32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) out[i] = lut[bytes[i]!]!;
      return out;
    }
    case "BOOL":
    case "U8":
      return Float32Array.from(bytes, (b) => (dtype === "BOOL" ? (b ? 1 : 0) : b));
    case "I8":
      return Float32Array.from(view(bytes, 1, (b, o, n) => new Int8Array(b, o, n)));
    case "I16":
      return Float32Array.from(view(bytes, 2, (b, o, n) => new Int16Array(b, o, n)));
    case "U16":
      return Float32Array.from(view(bytes, 2, (b, o, n) => new Uint16Array(b, o, n)));
    case "I32":
      return Float32Array.from(view(bytes, 4, (b, o, n) => new Int32Array(b, o, n)));
    case "U32":
      return Float32Array.from(view(bytes, 4, (b, o, n) => new Uint32Array(b, o, n)));
    case "I64":
      return Float32Array.from(view(bytes, 8, (b, o, n) => new BigInt64Array(b, o, n)), (v) => Number(v));
    case "U64":
      return Float32Array.from(view(bytes, 8, (b, o, n) => new BigUint64Array(b, o, n)), (v) => Number(v));
    default:
      throw new LoraspecError("E_NOT_SUPPORTED", `cannot read ${dtype} tensors as real numbers`, { details: { dtype } });
  }
}

/**
 * f32 -> 8-bit float with round-to-nearest-even over the representable values. Overflow follows
 * torch 2.13's casts (checked in the dtype test): E5M2 goes to +-inf; E4M3FN (no inf) saturates to
 * +-448, infinities included.
 */
function f8Encoder(dtype: "F8_E4M3" | "F8_E5M2"): (x: number) => number {
  // Positive codes in increasing value order; the last is the saturation (E4M3: 448) or overflow
  // (E5M2: +inf, which sits where 65536 would) code.
  const lut = f8Lut(dtype);
  const top = dtype === "F8_E4M3" ? 0x7e : 0x7c;
  const values = Float64Array.from({ length: top + 1 }, (_, i) => lut[i]!);
  if (dtype === "F8_E5M2") values[top] = 65536;
  const nan = dtype === "F8_E4M3" ? 0x7f : 0x7e;
  return (x) => {
    if (Number.isNaN(x)) return nan;
    const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
    const a = Math.abs(Math.fround(x));
    if (a >= values[top]!) return sign | top;
    let lo = 0, hi = top;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (values[mid]! <= a) lo = mid;
      else hi = mid - 1;
    }
    const d0 = a - values[lo]!, d1 = values[lo + 1]! - a;
    const code = d0 < d1 ? lo : d1 < d0 ? lo + 1 : lo & 1 ? lo + 1 : lo;
    return sign | code;
  };
}

/** Encodes f32 values as little-endian bytes of `dtype` (round-to-nearest-even). */
export function encodeFromF32(dtype: Dtype, values: Float32Array): Uint8Array {
  if (!LITTLE_ENDIAN) throw new Error("big-endian hosts are not supported");
  switch (dtype) {
    case "F32":
      return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
    case "F64":
      return new Uint8Array(Float64Array.from(values).buffer);
    case "BF16": {
      const src = new Uint32Array(values.buffer, values.byteOffset, values.length);
      const out = new Uint16Array(values.length);
      for (let i = 0; i < src.length; i++) {
        const u = src[i]!;
        out[i] = (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 0x40 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
      }
      return new Uint8Array(out.buffer);
    }
    case "F16": {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]!);
      return new Uint8Array(out.buffer);
    }
    case "F8_E4M3":
    case "F8_E5M2": {
      const enc = f8Encoder(dtype);
      const out = new Uint8Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = enc(values[i]!);
      return out;
    }
    default:
      throw new LoraspecError("E_NOT_SUPPORTED", `cannot write ${dtype} tensors from computed values`, { details: { dtype } });
  }
}
