import { describe, expect, it } from "vitest";
import { decodeToF32, encodeFromF32, scaleBf16 } from "../../src/lora/dtype.js";

/** The definition scaleBf16 must match bit for bit: decode, multiply in f32, round once. */
function reference(src: Uint16Array, factor: number): Uint16Array {
  const f = Math.fround(factor);
  const v = decodeToF32("BF16", new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = Math.fround(v[i]! * f);
  return new Uint16Array(encodeFromF32("BF16", out).buffer);
}

// Every bf16 bit pattern: zeros, subnormals, the smallest and largest normals, inf and NaNs.
const ALL = Uint16Array.from({ length: 65536 }, (_, i) => i);

describe("scaleBf16", () => {
  // Powers of two take the exponent-field path (with an exact fallback); others the f32 path.
  const factors = [0.5, 2, 0.25, 4, 1, -1, -0.5, -8, 2 ** -126, 2 ** -120, 2 ** 120, 2 ** 126, 0.3, 1 / 3, 1.5, -0.7, 1e-30, 1e30, 0, -0, Infinity, NaN];
  it.each(factors)("matches decode * f -> round for every bf16 value, factor %s", (factor) => {
    expect(Array.from(scaleBf16Out(ALL, factor))).toEqual(Array.from(reference(ALL, factor)));
  });

  it("is the same on unaligned and odd-length views and in place", () => {
    const buf = new Uint16Array(ALL.length + 1);
    buf.set(ALL, 1);
    const src = buf.subarray(1, 1 + 4097); // byteOffset 2: the 16-bit path
    const expected = reference(src.slice(), 0.5);
    const out = new Uint16Array(buf.length).subarray(1, 1 + 4097);
    scaleBf16(src, out, 0.5);
    expect(Array.from(out)).toEqual(Array.from(expected));
    scaleBf16(src, src, 0.5);
    expect(Array.from(src)).toEqual(Array.from(expected));
  });
});

function scaleBf16Out(src: Uint16Array, factor: number): Uint16Array {
  const dst = new Uint16Array(src.length);
  scaleBf16(src, dst, factor);
  return dst;
}
