import { createHash } from "node:crypto";
import { open, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeToF32, encodeFromF32, type Dtype } from "@loraspec/core/lora/dtype.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { writeSafetensors } from "@loraspec/engine/lora/write-safetensors.js";
import { HAS_PYTHON, oracle, randomF32, rng, tempDir } from "./helpers.js";

/** Builds raw safetensors bytes from a header object and a data buffer (for invalid files). */
function rawFile(header: unknown, data: Uint8Array, pad = ""): Uint8Array {
  const text = new TextEncoder().encode((typeof header === "string" ? header : JSON.stringify(header)) + pad);
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

async function reasonOf(bytes: Uint8Array): Promise<string> {
  const dir = await tempDir();
  const p = join(dir, "x.safetensors");
  await writeFile(p, bytes);
  try {
    const f = await openSafetensors({ path: p });
    await f.close();
    return "ok";
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    expect(error.code).toBe("E_SAFETENSORS_INVALID");
    return (error.details as { reason: string }).reason;
  }
}

const t = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

describe("safetensors reader validation (reference rules, lora-formats.md §1.3)", () => {
  const cases: Array<[string, Uint8Array, string]> = [
    ["valid two tensors", rawFile({ a: t("F32", [2], 0, 8), b: t("F16", [], 8, 10) }, new Uint8Array(10)), "ok"],
    ["JSON order does not matter", rawFile({ b: t("F16", [], 8, 10), a: t("F32", [2], 0, 8) }, new Uint8Array(10)), "ok"],
    ["leading and trailing whitespace", rawFile(`\n\t {"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, new Uint8Array(1), "   "), "ok"],
    ["zero-size dim", rawFile({ a: t("F32", [0, 3], 0, 0) }, new Uint8Array(0)), "ok"],
    ["fewer than 8 bytes", new Uint8Array(5), "HeaderTooSmall"],
    ["header length > 100 MB", (() => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 100_000_001n, true); return b; })(), "HeaderTooLarge"],
    ["header length u64 max", (() => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 2n ** 64n - 1n, true); return b; })(), "HeaderTooLarge"],
    ["header longer than file", (() => { const b = rawFile({}, new Uint8Array(0)); new DataView(b.buffer).setBigUint64(0, 999n, true); return b; })(), "InvalidHeaderLength"],
    ["invalid UTF-8", (() => { const b = rawFile('{"a":1}', new Uint8Array(0)); b[10] = 0xff; return b; })(), "InvalidHeader"],
    ["empty header", rawFile("", new Uint8Array(0)), "InvalidHeaderDeserialization"],
    ["not JSON", rawFile("{nope", new Uint8Array(0)), "InvalidHeaderDeserialization"],
    ["array header", rawFile("[]", new Uint8Array(0)), "InvalidHeaderDeserialization"],
    ["non-string metadata", rawFile({ __metadata__: { a: 1 } }, new Uint8Array(0)), "InvalidHeaderDeserialization"],
    ["unknown dtype", rawFile({ a: t("F17", [1], 0, 4) }, new Uint8Array(4)), "InvalidHeaderDeserialization"],
    ["negative shape", rawFile({ a: t("F32", [-1], 0, 4) }, new Uint8Array(4)), "InvalidHeaderDeserialization"],
    ["missing data_offsets", rawFile({ a: { dtype: "F32", shape: [1] } }, new Uint8Array(4)), "InvalidHeaderDeserialization"],
    // The reference keeps the last of a repeated tensor name (a HashMap): here a gap before [1, 2].
    ["duplicate key (last wins, as the reference)", rawFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', new Uint8Array(2)), "InvalidOffset"],
    ["gap before first tensor", rawFile({ a: t("U8", [1], 1, 2) }, new Uint8Array(2)), "InvalidOffset"],
    ["overlap", rawFile({ a: t("U8", [2], 0, 2), b: t("U8", [2], 1, 3) }, new Uint8Array(3)), "InvalidOffset"],
    ["json attack: all at [0,16]", rawFile(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`t${i}`, t("F32", [4], 0, 16)])), new Uint8Array(16)), "InvalidOffset"],
    ["end < begin", rawFile({ a: t("U8", [0], 0, 0), b: t("U8", [1], 0, 1), c: t("U8", [0], 1, 0) }, new Uint8Array(1)), "InvalidOffset"],
    ["huge shape", rawFile({ a: t("F32", [2 ** 40, 2 ** 40], 0, 4) }, new Uint8Array(4)), "ValidationOverflow"],
    ["F4 odd count", rawFile({ a: t("F4", [3], 0, 1) }, new Uint8Array(1)), "MisalignedSlice"],
    ["byte length != shape x dtype", rawFile({ a: t("F32", [2], 0, 4) }, new Uint8Array(4)), "TensorInvalidInfo"],
    ["trailing bytes", rawFile({ a: t("U8", [1], 0, 1) }, new Uint8Array(2)), "MetadataIncompleteBuffer"],
    ["truncated data", rawFile({ a: t("F32", [4], 0, 16) }, new Uint8Array(8)), "MetadataIncompleteBuffer"],
  ];
  it.each(cases)("%s", async (_name, bytes, reason) => {
    expect(await reasonOf(bytes)).toBe(reason);
  });

  it("names the tensor in the error", async () => {
    const dir = await tempDir();
    const p = join(dir, "x.safetensors");
    await writeFile(p, rawFile({ "lora_unet_x.alpha": t("F32", [2], 0, 4) }, new Uint8Array(4)));
    const error = await openSafetensors({ path: p }).catch((e) => e);
    expect(error.field).toBe('tensor "lora_unet_x.alpha"');
    expect(error.details.tensor).toBe("lora_unet_x.alpha");
  });
});

describe("safetensors writer", () => {
  it("lays out like the reference writer: sorted by dtype then name, 8-aligned data, readable back", async () => {
    const dir = await tempDir();
    const p = join(dir, "out.safetensors");
    await writeSafetensors({
      path: p,
      metadata: { ss_network_dim: "4", note: "é" },
      tensors: [
        { name: "b", dtype: "F16", shape: [], data: new Uint8Array([0, 0x3c]) },
        { name: "a", dtype: "F16", shape: [3], data: new Uint8Array(6) },
        { name: "c", dtype: "F32", shape: [2], data: () => encodeFromF32("F32", new Float32Array([1.5, -2])) },
        { name: "d", dtype: "U8", shape: [1], data: new Uint8Array([7]) },
      ],
    });
    const f = await openSafetensors({ path: p });
    expect(f.dataStart % 8).toBe(0);
    expect(f.tensors.map((x) => x.name)).toEqual(["c", "a", "b", "d"]);
    expect(f.metadata).toEqual({ ss_network_dim: "4", note: "é" });
    expect(Array.from(await f.readF32("c"))).toEqual([1.5, -2]);
    expect(Array.from(await f.readF32("b"))).toEqual([1]);
    await f.close();
  });

  it("writes the empty file byte-for-byte like the reference (test_empty)", async () => {
    const dir = await tempDir();
    const p = join(dir, "empty.safetensors");
    await writeSafetensors({ path: p, tensors: [] });
    expect(Array.from(await readFile(p))).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 32, 32, 32, 32, 32, 32]);
  });

  it("files larger than the writer's buffers: bytes, fillers, oversized tensors, huge metadata and the data hash are right", async () => {
    const dir = await tempDir();
    const next = rng(5);
    const bytes = (n: number) => Uint8Array.from({ length: n }, () => (next() * 256) | 0);
    // 3 MiB + 5 MiB + 11 MiB (larger than one 8 MiB buffer) + odd small ones, in all three data forms.
    const big = bytes(11 << 20), mid = bytes(5 << 20), small = bytes(3 << 20), tiny = bytes(6);
    const metadatas: Record<string, string>[] = [{ sshs_model_hash: "", sshs_legacy_hash: "" }, { sshs_model_hash: "", pad: "x".repeat(9 << 20) }];
    for (const metadata of metadatas) {
      const p = join(dir, "big.safetensors");
      const result = await writeSafetensors({
        path: p,
        metadata,
        tensors: [
          { name: "big", dtype: "U8", shape: [big.length], data: { fill: (dest: Uint8Array) => dest.set(big) } },
          { name: "mid", dtype: "U8", shape: [mid.length], data: () => mid },
          { name: "small", dtype: "U8", shape: [small.length], data: { fill: async (dest: Uint8Array) => dest.set(small) } },
          { name: "tiny", dtype: "U8", shape: [3, 2], data: tiny },
        ],
      });
      const f = await openSafetensors({ path: p });
      expect(f.tensors.map((t) => t.name)).toEqual(["big", "mid", "small", "tiny"]);
      for (const [name, want] of [["big", big], ["mid", mid], ["small", small], ["tiny", tiny]] as const) {
        expect(Buffer.compare(Buffer.from(await f.readBytes(name)), Buffer.from(want))).toBe(0);
      }
      const all = await readFile(p);
      const sha = createHash("sha256").update(all.subarray(f.dataStart)).digest("hex");
      expect(result.dataSha256).toBe(sha);
      expect(f.metadata.sshs_model_hash).toBe(sha);
      expect(result.bytes).toBe(all.length);
      await f.close();
    }
  });

  it("hashes files of 64 MB and more in a worker thread with the same result", async () => {
    const dir = await tempDir();
    const p = join(dir, "huge.safetensors");
    // 72 MiB in 9 tensors (every buffer round), each MiB a different byte value.
    const fill = (i: number) => (dest: Uint8Array) => {
      for (let k = 0; k < dest.length; k += 1 << 20) dest.fill((i * 8 + (k >> 20)) & 0xff, k, k + (1 << 20));
    };
    const tensors = Array.from({ length: 9 }, (_, i) => ({ name: `t${i}`, dtype: "U8" as const, shape: [8 << 20], data: { fill: fill(i) } }));
    const result = await writeSafetensors({ path: p, metadata: { "modelspec.hash_sha256": "", sshs_legacy_hash: "" }, tensors });
    const f = await openSafetensors({ path: p });
    const sha = createHash("sha256").update((await readFile(p)).subarray(f.dataStart)).digest("hex");
    expect(result.dataSha256).toBe(sha);
    expect(f.metadata["modelspec.hash_sha256"]).toBe(`0x${sha}`);
    await f.close();
  });

  it("leaves no file and no temp file when a producer fails", async () => {
    const dir = await tempDir();
    const p = join(dir, "x.safetensors");
    const failing = writeSafetensors({ path: p, tensors: [{ name: "a", dtype: "F32", shape: [1], data: () => { throw new Error("boom"); } }] });
    await expect(failing).rejects.toThrow("boom");
    const { readdir } = await import("node:fs/promises");
    expect(await readdir(dir)).toEqual([]);
  });

  it.runIf(HAS_PYTHON)("output loads in the Python safetensors library with the same values", async () => {
    const dir = await tempDir();
    const p = join(dir, "py.safetensors");
    const next = rng(1);
    const x = randomF32(24, next);
    await writeSafetensors({
      path: p,
      metadata: { format: "pt" },
      tensors: [
        { name: "w.f32", dtype: "F32", shape: [4, 6], data: encodeFromF32("F32", x) },
        { name: "w.bf16", dtype: "BF16", shape: [24], data: encodeFromF32("BF16", x) },
        { name: "w.f16", dtype: "F16", shape: [2, 12], data: encodeFromF32("F16", x) },
        { name: "alpha", dtype: "F16", shape: [], data: encodeFromF32("F16", new Float32Array([8])) },
      ],
    });
    const loaded = oracle("load_safetensors.py", [p]);
    expect(loaded.metadata).toEqual({ format: "pt" });
    expect(loaded.tensors["w.f32"]).toMatchObject({ dtype: "float32", shape: [4, 6] });
    expect(loaded.tensors["w.f32"].values).toEqual(Array.from(x));
    expect(loaded.tensors["w.bf16"].values).toEqual(Array.from(decodeToF32("BF16", encodeFromF32("BF16", x))));
    expect(loaded.tensors.alpha).toMatchObject({ dtype: "float16", shape: [], values: [8] });
  });
});

describe("dtype conversion matches torch (round to nearest even)", () => {
  const specials = [0, -0, 1, -1, 1.01171875, Math.PI, 1e-8, -1e-8, 6e-5, 65504, 65520, 70000, 3.4e38, 448, 464, 470, 479, 480, 500, 57344, 61440, 1e-3, 2 ** -9, 2 ** -10, 2 ** -17, 2 ** -24, 2 ** -25, 3 * 2 ** -26, Infinity, -Infinity, NaN];
  it.runIf(HAS_PYTHON)("bf16, f16, f8 e4m3fn, f8 e5m2 bytes equal torch's casts", async () => {
    const next = rng(7);
    const values = new Float32Array(4096 + specials.length);
    values.set(specials);
    for (let i = specials.length; i < values.length; i++) values[i] = (next() * 2 - 1) * 2 ** Math.floor(next() * 40 - 24);
    const dir = await tempDir();
    const inPath = join(dir, "in.safetensors");
    const outPath = join(dir, "out.safetensors");
    await writeSafetensors({ path: inPath, tensors: [{ name: "x", dtype: "F32", shape: [values.length], data: encodeFromF32("F32", values) }] });
    oracle("convert_dtypes.py", [inPath, outPath]);
    const f = await openSafetensors({ path: outPath });
    const pairs: Array<[string, Dtype]> = [["bf16", "BF16"], ["f16", "F16"], ["e4m3", "F8_E4M3"], ["e5m2", "F8_E5M2"]];
    for (const [name, dtype] of pairs) {
      const torchBytes = await f.readBytes(name);
      const ours = encodeFromF32(dtype, values);
      const mismatches: string[] = [];
      const width = ours.length / values.length;
      for (let i = 0; i < ours.length; i++) {
        const value = values[Math.floor(i / width)]!;
        // NaN payloads differ between torch's scalar and vector paths (0x7FC0 vs 0xFFFF); any NaN is NaN.
        if (ours[i] !== torchBytes[i] && !Number.isNaN(value)) mismatches.push(`${dtype} byte ${i} (value ${value})`);
      }
      expect(Number.isNaN(decodeToF32(dtype, ours)[specials.length - 1]!)).toBe(true);
      expect(mismatches.slice(0, 5)).toEqual([]);
      const back = await f.readF32(`back_${name}`);
      const decoded = decodeToF32(dtype, torchBytes);
      for (let i = 0; i < back.length; i++) {
        if (Number.isNaN(back[i]!)) expect(Number.isNaN(decoded[i]!)).toBe(true);
        else expect(decoded[i]).toBe(back[i]);
      }
    }
    await f.close();
  });
});

describe("positioned reads", () => {
  it("reads one tensor without reading the rest of a large sparse file", async () => {
    // A 3 GiB file (sparse on disk): readFile would refuse it; we read the header and one tensor.
    const dir = await tempDir();
    const p = join(dir, "big.safetensors");
    const big = 3 * 2 ** 30;
    const header = new TextEncoder().encode(JSON.stringify({ big: t("U8", [big], 0, big), tail: t("F32", [1], big, big + 4) }));
    const padded = Math.ceil(header.length / 8) * 8;
    const h = await open(p, "w");
    const head = new Uint8Array(8 + padded).fill(0x20);
    new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
    head.set(header, 8);
    await h.write(head, 0, head.length, 0);
    await h.write(encodeFromF32("F32", new Float32Array([2.5])), 0, 4, 8 + padded + big);
    await h.close();
    const f = await openSafetensors({ path: p });
    expect(Array.from(await f.readF32("tail"))).toEqual([2.5]);
    await f.close();
  });
});

describe("mutation fuzz", () => {
  it("thousands of corrupted files give coded errors, never a crash or huge allocation", async () => {
    const dir = await tempDir();
    const src = join(dir, "src.safetensors");
    const next = rng(42);
    await writeSafetensors({
      path: src,
      metadata: { ss_network_dim: "4", ss_tag_frequency: '{"a":{"b":1}}' },
      tensors: [
        { name: "lora_unet_x.lora_down.weight", dtype: "BF16", shape: [4, 8], data: encodeFromF32("BF16", randomF32(32, next)) },
        { name: "lora_unet_x.lora_up.weight", dtype: "F32", shape: [8, 4], data: encodeFromF32("F32", randomF32(32, next)) },
        { name: "lora_unet_x.alpha", dtype: "F16", shape: [], data: encodeFromF32("F16", new Float32Array([4])) },
      ],
    });
    const original = new Uint8Array(await readFile(src));
    const headerLen = Number(new DataView(original.buffer).getBigUint64(0, true));
    const headerText = new TextDecoder().decode(original.subarray(8, 8 + headerLen));
    const tokens = ["0", "1", "-1", "99999999999999999999", "1e308", '"F64"', '"X9"', "[]", "{}", "null", '"', ",", "]", "}", "4294967296", "1.5"];
    const p = join(dir, "m.safetensors");
    const outcomes = new Map<string, number>();
    const N = 3000;
    for (let i = 0; i < N; i++) {
      let bytes: Uint8Array;
      const kind = Math.floor(next() * 6);
      if (kind === 0) bytes = original.slice(0, Math.floor(next() * original.length)); // truncate
      else if (kind === 1) {
        bytes = original.slice();
        new DataView(bytes.buffer).setBigUint64(0, BigInt(Math.floor(next() * 2 ** 53)) >> BigInt(Math.floor(next() * 53)), true); // lying length
      } else if (kind === 2) {
        bytes = original.slice();
        for (let k = 0; k < 1 + Math.floor(next() * 4); k++) bytes[Math.floor(next() * bytes.length)] = Math.floor(next() * 256); // flip bytes
      } else if (kind === 3) {
        // replace a number or string token in the header with a hostile one
        const parts = headerText.split(/(\d+|"[A-Z0-9_]+")/);
        const idx = Math.floor(next() * parts.length);
        parts[idx] = tokens[Math.floor(next() * tokens.length)]!;
        const text = new TextEncoder().encode(parts.join(""));
        bytes = new Uint8Array(8 + text.length + original.length - 8 - headerLen);
        new DataView(bytes.buffer).setBigUint64(0, BigInt(text.length), true);
        bytes.set(text, 8);
        bytes.set(original.subarray(8 + headerLen), 8 + text.length);
      } else if (kind === 4) {
        const extra = new Uint8Array(1 + Math.floor(next() * 16));
        bytes = new Uint8Array([...original, ...extra]); // trailing bytes
      } else {
        // non-string metadata value
        const text = new TextEncoder().encode(headerText.replace('"4"', String(Math.floor(next() * 10))));
        bytes = new Uint8Array(8 + text.length + original.length - 8 - headerLen);
        new DataView(bytes.buffer).setBigUint64(0, BigInt(text.length), true);
        bytes.set(text, 8);
        bytes.set(original.subarray(8 + headerLen), 8 + text.length);
      }
      await writeFile(p, bytes);
      let outcome: string;
      try {
        const f = await openSafetensors({ path: p });
        for (const tensor of f.tensors) await f.readF32(tensor.name).catch((e) => { if (!isLoraspecError(e)) throw e; });
        await f.close();
        outcome = "ok";
      } catch (error) {
        if (!isLoraspecError(error)) throw new Error(`uncoded error for mutation ${i} (kind ${kind}): ${String(error)}`);
        outcome = (error.details as { reason?: string } | undefined)?.reason ?? error.code;
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    // Every corruption class shows up, and most corruptions are rejected.
    for (const reason of ["HeaderTooLarge", "InvalidHeaderLength", "InvalidHeaderDeserialization", "MetadataIncompleteBuffer", "HeaderTooSmall"]) {
      expect(outcomes.get(reason) ?? 0, reason).toBeGreaterThan(0);
    }
    expect(outcomes.get("ok") ?? 0).toBeLessThan(N / 2);
  });
});

describe.runIf(HAS_PYTHON)("kohya hashes", () => {
  it("sshs_model_hash and sshs_legacy_hash are recomputed exactly as sd-scripts computes them", async () => {
    const dir = await tempDir();
    const p = join(dir, "h.safetensors");
    const next = rng(3);
    await writeSafetensors({
      path: p,
      metadata: { ss_network_dim: "8", ss_tag_frequency: '{"1_x": {"x": 1}}', other: "kept", sshs_model_hash: "stale", sshs_legacy_hash: "stale" },
      tensors: [
        { name: "lora_unet_a.lora_down.weight", dtype: "BF16", shape: [8, 65536], data: encodeFromF32("BF16", randomF32(8 * 65536, next)) },
        { name: "lora_unet_a.lora_up.weight", dtype: "F32", shape: [3072, 8], data: encodeFromF32("F32", randomF32(3072 * 8, next)) },
        { name: "lora_unet_a.alpha", dtype: "F16", shape: [], data: encodeFromF32("F16", new Float32Array([4])) },
      ],
    });
    const want = oracle("sshs_hash.py", [p]);
    expect(want.file.sshs_model_hash).toBe(want.sshs_model_hash);
    expect(want.file.sshs_legacy_hash).toBe(want.sshs_legacy_hash);
    expect(want.file.other).toBe("kept");
  });
});
