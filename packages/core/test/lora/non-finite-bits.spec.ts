import { describe, expect, it } from "vitest";
import { decodeToF32, type Dtype } from "../../src/lora/dtype.js";
import { countNonFinite } from "../../src/lora/non-finite-bits.js";

/** The reference: decode to f32 and look at the values. */
function byValues(dtype: Dtype, bytes: Uint8Array): { nan: number; inf: number } {
  const v = decodeToF32(dtype, bytes);
  let nan = 0, inf = 0;
  for (const x of v) {
    if (Number.isNaN(x)) nan++;
    else if (!Number.isFinite(x)) inf++;
  }
  return { nan, inf };
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
}

describe("countNonFinite reads NaN and Inf from the bits as decoding does", () => {
  for (const dtype of ["BF16", "F16"] as const) {
    it(`${dtype}: every one of the 65,536 patterns, alone and packed`, () => {
      const all = new Uint16Array(65536).map((_, i) => i);
      const bytes = new Uint8Array(all.buffer);
      expect(countNonFinite(dtype, bytes)).toEqual(byValues(dtype, bytes));
      for (let i = 0; i < 65536; i++) {
        const one = bytes.subarray(i * 2, i * 2 + 2);
        expect(countNonFinite(dtype, one), `pattern ${i.toString(16)}`).toEqual(byValues(dtype, one));
      }
    });

    it(`${dtype}: one non-finite value at any place of a long tensor (block edges, odd tails, unaligned views)`, () => {
      const special = dtype === "BF16" ? [0x7f80, 0xff80, 0x7fc0, 0xffff, 0x7f81] : [0x7c00, 0xfc00, 0x7e00, 0xffff, 0x7c01];
      for (const len of [1, 2, 3, 2047, 2048, 2049, 4097]) {
        for (const at of [0, 1, len - 1, Math.floor(len / 2), 2047, 2048].filter((p) => p >= 0 && p < len)) {
          for (const bits of special) {
            const v = new Uint16Array(len).fill(dtype === "BF16" ? 0x3f80 : 0x3c00);
            v[at] = bits;
            const bytes = new Uint8Array(v.buffer);
            expect(countNonFinite(dtype, bytes)).toEqual(byValues(dtype, bytes));
            const padded = new Uint8Array(bytes.length + 2);
            padded.set(bytes, 2);
            expect(countNonFinite(dtype, padded.subarray(2))).toEqual(byValues(dtype, bytes));
          }
        }
      }
    });
  }

  it("F32: the edge patterns and 200,000 random words", () => {
    const edges = [0x7f800000, 0xff800000, 0x7f800001, 0x7fc00000, 0xffffffff, 0x7f7fffff, 0xff7fffff, 0x00000000, 0x80000000, 0x00000001, 0x3f800000];
    const rand = lcg(7);
    const words = new Uint32Array(200_000 + edges.length);
    words.set(edges);
    for (let i = edges.length; i < words.length; i++) words[i] = rand() | (i % 97 === 0 ? 0x7f800000 : 0);
    const bytes = new Uint8Array(words.buffer);
    const got = countNonFinite("F32", bytes);
    expect(got).toEqual(byValues("F32", bytes));
    expect(got.nan + got.inf).toBeGreaterThan(2000);
    for (let i = 0; i < edges.length; i++) expect(countNonFinite("F32", bytes.subarray(i * 4, i * 4 + 4))).toEqual(byValues("F32", bytes.subarray(i * 4, i * 4 + 4)));
  });

  it("the other float dtypes count what their decoded values are (an F64 beyond f32's range is Inf)", () => {
    const rand = lcg(11);
    for (const dtype of ["F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0"] as const) {
      const bytes = new Uint8Array(256).map((_, i) => i);
      expect(countNonFinite(dtype, bytes)).toEqual(byValues(dtype, bytes));
    }
    const f64 = new Float64Array([1, NaN, Infinity, -Infinity, 1e300, rand()]);
    expect(countNonFinite("F64", new Uint8Array(f64.buffer))).toEqual({ nan: 1, inf: 3 });
  });
});
