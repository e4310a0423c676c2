import { readFile, link, mkdir, symlink, readdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { decodeToF32, type Dtype, encodeFromF32 } from "@loraspec/core/lora/dtype.js";
import { checkMergeOptions, MERGE_LIMITS, numberFlag } from "@loraspec/core/lora/options.js";
import { parseLora, scaleOf, splitScale } from "@loraspec/core/lora/parse-lora.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { inspectLora, readAlphas } from "@loraspec/engine/lora/inspect-lora.js";
import { mergeLora } from "@loraspec/engine/lora/merge-lora.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { writeSafetensors, type OutputTensor } from "@loraspec/engine/lora/write-safetensors.js";
import { buildLora, rng, tempDir } from "./helpers.js";

/** The defects of issue 26, each as the class of input that caused it. */

const STEM = "lora_unet_img_in"; // FLUX.1 img_in: Linear 64 -> 3072
const RANK = 2;

/** Little-endian bytes of integer values in an integer/bool dtype. */
function intBytes(dtype: Dtype, values: number[]): Uint8Array {
  const make: Record<string, (n: number) => ArrayBufferView> = {
    BOOL: (n) => new Uint8Array(n), U8: (n) => new Uint8Array(n), I8: (n) => new Int8Array(n), I16: (n) => new Int16Array(n), U16: (n) => new Uint16Array(n),
    I32: (n) => new Int32Array(n), U32: (n) => new Uint32Array(n), I64: (n) => new BigInt64Array(n), U64: (n) => new BigUint64Array(n),
  };
  const arr = make[dtype]!(values.length) as unknown as { [i: number]: number | bigint };
  values.forEach((v, i) => (arr[i] = dtype.endsWith("64") ? BigInt(v) : v));
  const view = arr as unknown as ArrayBufferView;
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Encodes values in any dtype a test uses (floats by rounding, FNUZ/E8M0 by picking exact codes). */
function bytesOf(dtype: Dtype, values: number[]): Uint8Array {
  if (["F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"].includes(dtype)) return encodeFromF32(dtype, Float32Array.from(values));
  if (dtype.startsWith("F8_") || dtype === "C64") {
    // Codes whose decoded value we read back: the test compares against what the file holds.
    const n = dtype === "C64" ? values.length * 8 : values.length;
    return Uint8Array.from({ length: n }, (_, i) => (dtype === "F8_E8M0" ? 120 + (i % 8) : 0x30 + (i % 0x30)));
  }
  return intBytes(dtype, values.map((v) => Math.round(v)));
}

async function loraFile(dir: string, params: { factor?: Dtype; alphaDtype?: Dtype; alpha?: number; downShape?: number[]; name?: string }): Promise<string> {
  const next = rng(7);
  const factor = params.factor ?? "F32";
  const downShape = params.downShape ?? [RANK, 64];
  const nDown = downShape.reduce((a, b) => a * b, 1);
  const small = (n: number) => Array.from({ length: n }, () => (factor.startsWith("F") ? next() - 0.5 : Math.floor(next() * 5) - (factor.startsWith("U") || factor === "BOOL" ? 0 : 2)));
  const tensors: OutputTensor[] = [
    { name: `${STEM}.lora_down.weight`, dtype: factor, shape: downShape, data: bytesOf(factor, small(nDown).map((v) => (factor === "BOOL" ? Math.abs(v) % 2 : v))) },
    { name: `${STEM}.lora_up.weight`, dtype: factor, shape: [3072, downShape[0]!], data: bytesOf(factor, small(3072 * downShape[0]!).map((v) => (factor === "BOOL" ? Math.abs(v) % 2 : v))) },
  ];
  if (params.alpha !== undefined) tensors.push({ name: `${STEM}.alpha`, dtype: params.alphaDtype ?? "F32", shape: [], data: bytesOf(params.alphaDtype ?? "F32", [params.alpha]) });
  const path = join(dir, params.name ?? `${factor}-${params.alphaDtype ?? "none"}-${params.alpha ?? "x"}.safetensors`);
  await writeSafetensors({ path, tensors });
  return path;
}

/** scale * up @ down of the one module of a file, in float64, from the bytes it holds. */
async function delta(path: string): Promise<Float64Array> {
  const f = await openSafetensors({ path });
  try {
    const parsed = parseLora({ tensors: f.tensors, metadata: f.metadata, alphas: await readAlphas(f) });
    const out = new Float64Array(3072 * 64);
    for (const m of parsed.placed) {
      const down = decodeToF32(f.tensor(m.keys.down!).dtype, await f.readBytes(m.keys.down!));
      const up = decodeToF32(f.tensor(m.keys.up!).dtype, await f.readBytes(m.keys.up!));
      const s = scaleOf(m);
      const row0 = m.placement.part !== undefined ? m.placement.module.parts[m.placement.part]!.start : 0;
      const rows = up.length / m.rank;
      for (let i = 0; i < rows; i++) for (let r = 0; r < m.rank; r++) for (let j = 0; j < 64; j++) out[(row0 + i) * 64 + j]! += s * up[i * m.rank + r]! * down[r * 64 + j]!;
    }
    return out;
  } finally {
    await f.close();
  }
}

function maxRel(a: Float64Array, b: Float64Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    return error.code;
  }
}

describe("scales: negative, tiny, huge and non-finite never hang (defect 1)", () => {
  it("splitScale terminates and is exact for every sign and magnitude", () => {
    const values = [-0.5, -1, -1e-30, -3.7e12, 0.5, 1e-30, 3.7e12, 0, -0, 1, 2 ** -60, -(2 ** 60), Number.MIN_VALUE, -Number.MIN_VALUE];
    for (const v of values) {
      const { down, up } = splitScale(v);
      expect(down * up, String(v)).toBe(v);
    }
    for (const v of [NaN, Infinity, -Infinity]) expect(splitScale(v).up).toBe(1);
  });

  it("convert of a file with a negative alpha and a cat merge with a negative weight finish with the exact delta", async () => {
    const dir = await tempDir();
    const a = await loraFile(dir, { alpha: -1 });
    const d = join(dir, "d.safetensors");
    await collectEvents(convertLora({ input: a, output: d, to: "diffusers" }));
    expect(maxRel(await delta(d), await delta(a))).toBeLessThan(1e-6);
    const b = await loraFile(dir, { alpha: 4, name: "b.safetensors" });
    const m = join(dir, "m.safetensors");
    await collectEvents(mergeLora({ inputs: [{ path: a, weight: -0.5 }, { path: b, weight: 0.3 }], output: m, method: "cat" }));
    const [da, db] = [await delta(a), await delta(b)];
    expect(maxRel(await delta(m), da.map((x, i) => -0.5 * x + 0.3 * db[i]!))).toBeLessThan(1e-6);
  });
});

describe("every dtype of the format: read as values or refused with a coded error naming tensor and dtype (defects 2, 3)", () => {
  const ALPHA_DTYPES: Dtype[] = ["I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64", "F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"];
  it.each(ALPHA_DTYPES)("an %s alpha is its value: inspect shows it, convert keeps the delta", async (dtype) => {
    const dir = await tempDir();
    const a = await loraFile(dir, { alphaDtype: dtype, alpha: 8 });
    const r = await inspectLora({ path: a });
    expect([r.modules[0]!.alpha, r.modules[0]!.scale]).toEqual([8, 8 / RANK]);
    for (const to of ["diffusers", "kohya", "comfy"] as const) {
      const out = join(dir, `${to}.safetensors`);
      await collectEvents(convertLora({ input: a, output: out, to }));
      expect(maxRel(await delta(out), await delta(a)), to).toBeLessThan(1e-6);
    }
  });

  const FACTOR_DTYPES: Array<[Dtype, "ok" | "E_NOT_SUPPORTED"]> = [
    ["I8", "ok"], ["U8", "ok"], ["I16", "ok"], ["U16", "ok"], ["I32", "ok"], ["U32", "ok"], ["I64", "ok"], ["U64", "ok"], ["BOOL", "ok"],
    ["F8_E4M3FNUZ", "ok"], ["F8_E5M2FNUZ", "ok"], ["F8_E8M0", "ok"], ["F64", "ok"], ["C64", "E_NOT_SUPPORTED"],
  ];
  it.each(FACTOR_DTYPES)("%s factors with a scale to bake: convert and merge give %s", async (dtype, want) => {
    const dir = await tempDir();
    const a = await loraFile(dir, { factor: dtype, alpha: 1 });
    for (const to of ["diffusers", "kohya"] as const) {
      const out = join(dir, `${to}.safetensors`);
      const run = collectEvents(convertLora({ input: a, output: out, to }));
      if (want === "ok") {
        await run;
        expect(maxRel(await delta(out), await delta(a)), to).toBeLessThan(1e-6);
      } else {
        const error = await run.catch((e) => e);
        expect([error.code, error.field, error.details.dtype]).toEqual([want, `tensor "${STEM}.lora_down.weight"`, dtype]);
      }
    }
    const m = join(dir, "m.safetensors");
    expect(await codeOf(collectEvents(mergeLora({ inputs: [{ path: a, weight: 0.5 }, { path: a, weight: 0.25 }], output: m, method: "cat" })))).toBe(want);
  });
});

describe("flags and weights: one check for CLI, web and library (defect 4)", () => {
  const two = [{ path: "a.safetensors", weight: 0.5 }, { path: "b.safetensors", weight: 0.5 }];
  const bad: Array<[string, Parameters<typeof checkMergeOptions>[0], string]> = [
    ["rank -1", { inputs: two, method: "svd", rank: -1 }, "--rank"],
    ["rank 0", { inputs: two, method: "svd", rank: 0 }, "--rank"],
    ["rank 1.5", { inputs: two, method: "ties", rank: 1.5 }, "--rank"],
    ["rank above the limit", { inputs: two, method: "dare", rank: MERGE_LIMITS.rank.max + 1 }, "--rank"],
    ["rank with cat", { inputs: two, method: "cat", rank: 8 }, "--rank"],
    ["density 0", { inputs: two, method: "ties", density: 0 }, "--density"],
    ["density 1.5", { inputs: two, method: "dare", density: 1.5 }, "--density"],
    ["density with svd", { inputs: two, method: "svd", density: 0.5 }, "--density"],
    ["seed -1", { inputs: two, method: "dare", seed: -1 }, "--seed"],
    ["seed with linear", { inputs: two, method: "linear", seed: 1 }, "--seed"],
    ["weight NaN", { inputs: [two[0]!, { path: "b.safetensors", weight: NaN }], method: "cat" }, "weight of b.safetensors"],
    ["weight Infinity", { inputs: [two[0]!, { path: "b.safetensors", weight: Infinity }], method: "cat" }, "weight of b.safetensors"],
    ["weight 11", { inputs: [two[0]!, { path: "b.safetensors", weight: 11 }], method: "cat" }, "weight of b.safetensors"],
    ["no input", { inputs: [], method: "cat" }, "inputs"],
    ["one input with ties (one file is scaled with cat)", { inputs: [two[0]!], method: "ties" }, "--method"],
    ["one input at weight 0 (it would erase the LoRA)", { inputs: [{ path: "a.safetensors", weight: 0 }], method: "cat" }, "weight of a.safetensors"],
    ["one input with --to (its keys are kept)", { inputs: [two[0]!], method: "cat", to: "kohya" }, "--to"],
    ["unknown method", { inputs: two, method: "avg" }, "--method"],
    ["unknown target", { inputs: two, method: "cat", to: "onnx" }, "--to"],
  ];
  it.each(bad)("%s is refused naming the field", (_name, options, field) => {
    const error = (() => {
      try {
        checkMergeOptions(options);
      } catch (e) {
        return e as { code: string; field: string };
      }
      return undefined;
    })();
    expect([error?.code, error?.field]).toEqual(["E_USAGE", field]);
  });

  it("negative weights, rank 1 and density 1 are fine; number flags are parsed strictly", () => {
    expect(checkMergeOptions({ inputs: [{ path: "a", weight: -0.5 }, { path: "b", weight: 0.3 }], method: "ties", rank: 1, density: 1, seed: 0 }).rank).toBe(1);
    expect(numberFlag("8", "--rank")).toBe(8);
    for (const text of ["", "abc", "1e999", "0x10", "8 8", "Infinity"]) expect(() => numberFlag(text, "--rank"), text).toThrow(/--rank/);
  });

  it("the library refuses bad flags before opening any file", async () => {
    const error = await collectEvents(mergeLora({ inputs: [{ path: "/nonexistent/a", weight: 0.5 }, { path: "/nonexistent/b", weight: 0.5 }], output: "/nonexistent/m", method: "svd", rank: 0 })).catch((e) => e);
    expect([error.code, error.field]).toEqual(["E_USAGE", "--rank"]);
  });
});

describe("merge inputs of different base models are refused before any work, for every method (defect 6)", () => {
  it.each(["cat", "linear", "svd", "ties", "dare"] as const)("%s", async (method) => {
    const dir = await tempDir();
    const flux = join(dir, "flux.safetensors"), sdxl = join(dir, "sdxl.safetensors");
    await buildLora({ path: flux, arch: "flux1", format: "kohya", pick: (m) => m.native === "img_in", rank: 2 });
    await buildLora({ path: sdxl, arch: "sdxl", format: "kohya", pick: (m) => /^input_blocks\.4\.1\.transformer_blocks\.0\.attn1\.to_q$/.test(m.native), rank: 2 });
    let spawned = 0;
    // A temp folder of this test's own (os.tmpdir() reads TMPDIR per call; each test file runs in its own process):
    // other files merging at the same time make loraspec-merge-* folders in the shared one.
    const tmp = join(dir, "tmp");
    await mkdir(tmp);
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    onTestFinished(() => {
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
    });
    const error = await collectEvents(mergeLora({ inputs: [{ path: flux, weight: 0.5 }, { path: sdxl, weight: 0.5 }], output: join(dir, "m.safetensors"), method, worker: { spawn: (() => { spawned++; throw new Error("the worker must not start"); }) as never } })).catch((e) => e);
    expect([error.code, error.file, spawned]).toEqual(["E_LORA_SHAPE_MISMATCH", sdxl, 0]);
    expect(await readdir(tmp)).toEqual([]);
  });
});

describe("the output is never an input under another name (defect 8)", () => {
  it("./x, dir/../x, a symlink and a hard link are all refused; the input is untouched", async () => {
    const dir = await tempDir();
    const a = await loraFile(dir, { alpha: 1, name: "x.safetensors" });
    const original = await readFile(a);
    await symlink(a, join(dir, "sym.safetensors"));
    await link(a, join(dir, "hard.safetensors"));
    const names = [relative(process.cwd(), a).replace(/^(?!\.)/, "./"), join(dir, "sub", "..", "x.safetensors"), join(dir, "sym.safetensors"), join(dir, "hard.safetensors")];
    for (const output of names) {
      expect(await codeOf(collectEvents(convertLora({ input: a, output, to: "kohya" }))), output).toBe("E_USAGE");
      expect(await codeOf(collectEvents(mergeLora({ inputs: [{ path: a, weight: 0.5 }, { path: a, weight: 0.5 }], output, method: "cat" }))), output).toBe("E_USAGE");
    }
    expect(Buffer.compare(await readFile(a), original)).toBe(0);
  });
});

describe("smaller (defect 10)", () => {
  it("a 3x3 conv down on a Linear module is not placed; a rank-0 module has scale 1, not Infinity", async () => {
    const dir = await tempDir();
    const conv = await loraFile(dir, { alpha: 1, downShape: [RANK, 64, 3, 3], name: "conv.safetensors" });
    const r = await inspectLora({ path: conv });
    expect(r.modules).toEqual([]);
    expect(r.unplaced).toContain(`${STEM}.lora_down.weight`);
    const zero = await loraFile(dir, { alpha: 4, downShape: [0, 64], name: "zero.safetensors" });
    const z = await inspectLora({ path: zero });
    expect(z.modules.map((m) => [m.rank, m.scale])).toEqual([[0, 1]]);
  });

  it("a broken file's error names the tensor once", async () => {
    const dir = await tempDir();
    const p = join(dir, "bad.safetensors");
    const text = '{"lora_unet_x.alpha":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}';
    const bytes = new Uint8Array(8 + text.length + 4);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(text.length), true);
    bytes.set(new TextEncoder().encode(text), 8);
    await import("node:fs/promises").then((fs) => fs.writeFile(p, bytes));
    const error = await openSafetensors({ path: p }).catch((e) => e);
    expect(`${error.where}: ${error.message}`.split("lora_unet_x.alpha").length - 1).toBe(1);
  });
});
