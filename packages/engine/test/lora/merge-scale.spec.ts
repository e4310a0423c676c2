import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { architecture, type ModuleSpec } from "@loraspec/core/lora/architectures.js";
import { decodeToF32, encodeFromF32, type Dtype } from "@loraspec/core/lora/dtype.js";
import { checkMergeOptions } from "@loraspec/core/lora/options.js";
import { groupKeys, parseLora, scaleOf } from "@loraspec/core/lora/parse-lora.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { readAlphas } from "@loraspec/engine/lora/inspect-lora.js";
import { mergeLora } from "@loraspec/engine/lora/merge-lora.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { writeSafetensors, type OutputTensor } from "@loraspec/engine/lora/write-safetensors.js";
import { buildLora, HAS_PYTHON, oracle, randomF32, REPO, rng, tempDir } from "./helpers.js";

/**
 * `merge X:S` (one input, cat): the same LoRA with its delta x S. For every format the merge reads and
 * S in {0.5, 2, -1}: each module's delta in the output (read as loraspec reads it: alpha / rank, peft's
 * adapter-metadata alpha) is S x the input's, computed exactly from the factors in float64; keys,
 * shapes, dtypes, alphas and the input's metadata are kept; the input's bytes are unchanged.
 */

interface Loaded {
  tensors: Map<string, { dtype: Dtype; shape: number[]; v: Float32Array; bytes: Uint8Array }>;
  metadata: Record<string, string>;
  parsed: ReturnType<typeof parseLora>;
}

async function load(path: string): Promise<Loaded> {
  const f = await openSafetensors({ path });
  try {
    const tensors: Loaded["tensors"] = new Map();
    for (const t of f.tensors) {
      const bytes = await f.readBytes(t.name);
      tensors.set(t.name, { dtype: t.dtype, shape: t.shape, v: decodeToF32(t.dtype, bytes), bytes });
    }
    const parsed = parseLora({ tensors: f.tensors, metadata: f.metadata, alphas: await readAlphas(f) });
    return { tensors, metadata: f.metadata, parsed };
  } finally {
    await f.close();
  }
}

/** [rows, cols] row-major float64 view of a factor (trailing 1x1 or kernel dims folded into the columns). */
function mat(t: { shape: number[]; v: Float32Array }): { r: number; c: number; v: Float64Array } {
  const r = t.shape[0] ?? 1;
  return { r, c: t.v.length / r, v: Float64Array.from(t.v) };
}

function matmul(a: { r: number; c: number; v: Float64Array }, b: { r: number; c: number; v: Float64Array }): { r: number; c: number; v: Float64Array } {
  const out = new Float64Array(a.r * b.c);
  for (let i = 0; i < a.r; i++) for (let k = 0; k < a.c; k++) {
    const x = a.v[i * a.c + k]!;
    if (x !== 0) for (let j = 0; j < b.c; j++) out[i * b.c + j]! += x * b.v[k * b.c + j]!;
  }
  return { r: a.r, c: b.c, v: out };
}

/** X^T X of a [n, k] matrix (k x k). */
function gram(m: { r: number; c: number; v: Float64Array }, rowsAreSamples: boolean): Float64Array {
  // rowsAreSamples: X^T X for X [n, k]; else X X^T for X [k, n].
  const k = rowsAreSamples ? m.c : m.r, n = rowsAreSamples ? m.r : m.c;
  const at = (s: number, i: number) => (rowsAreSamples ? m.v[s * m.c + i]! : m.v[i * m.c + s]!);
  const g = new Float64Array(k * k);
  for (let s = 0; s < n; s++) for (let i = 0; i < k; i++) {
    const x = at(s, i);
    if (x !== 0) for (let j = 0; j < k; j++) g[i * k + j]! += x * at(s, j);
  }
  return g;
}

/** ||want - got|| / ||want|| for two factored deltas want = sw Bw Aw, got = sg Bg Ag, exactly from the factors. */
function factoredRelErr(w: { s: number; B: ReturnType<typeof mat>; A: ReturnType<typeof mat> }, g: { s: number; B: ReturnType<typeof mat>; A: ReturnType<typeof mat> }): number {
  const rw = w.B.c, rg = g.B.c, k = rw + rg, out = w.B.r;
  const B = { r: out, c: k, v: new Float64Array(out * k) };
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < rw; j++) B.v[i * k + j] = w.s * w.B.v[i * rw + j]!;
    for (let j = 0; j < rg; j++) B.v[i * k + rw + j] = -g.s * g.B.v[i * rg + j]!;
  }
  const A = { r: k, c: w.A.c, v: new Float64Array(k * w.A.c) };
  A.v.set(w.A.v, 0);
  A.v.set(g.A.v, rw * w.A.c);
  const trace = (gb: Float64Array, ga: Float64Array, n: number, limit = n) => {
    let t = 0;
    for (let i = 0; i < limit; i++) for (let j = 0; j < limit; j++) t += gb[i * n + j]! * ga[j * n + i]!;
    return t;
  };
  const gb = gram(B, true), ga = gram(A, false);
  const diff = trace(gb, ga, k);
  const ref = trace(gb, ga, k, rw);
  return ref === 0 ? (diff === 0 ? 0 : Infinity) : Math.sqrt(Math.max(diff, 0)) / Math.sqrt(ref);
}

/** Dense delta of a LoHa / LoKr / full-diff module (the same alpha rule on both sides: it is kept). */
function lycorisDelta(f: Loaded, base: string, params: string[]): { v: Float64Array; bias?: Float64Array } {
  const get = (p: string) => mat(f.tensors.get(`${base}.${p}`)!);
  const alpha = f.tensors.get(`${base}.alpha`)?.v[0];
  if (params.includes("diff")) return { v: get("diff").v, bias: params.includes("diff_b") ? get("diff_b").v : undefined };
  if (params.includes("hada_w1_a")) {
    const p1 = matmul(get("hada_w1_a"), get("hada_w1_b")), p2 = matmul(get("hada_w2_a"), get("hada_w2_b"));
    const scale = alpha !== undefined ? alpha / get("hada_w1_b").r : 1;
    return { v: p1.v.map((x, i) => x * p2.v[i]! * scale) };
  }
  const side = (w: string) => (params.includes(`lokr_${w}`) ? get(`lokr_${w}`) : matmul(get(`lokr_${w}_a`), get(`lokr_${w}_b`)));
  const w1 = side("w1"), w2 = side("w2");
  const rank = params.includes("lokr_w2_b") ? get("lokr_w2_b").r : params.includes("lokr_w1_b") ? get("lokr_w1_b").r : undefined;
  const scale = alpha !== undefined && rank !== undefined ? alpha / rank : 1;
  const out = new Float64Array(w1.r * w2.r * w1.c * w2.c);
  const cols = w1.c * w2.c;
  for (let i = 0; i < w1.r; i++) for (let j = 0; j < w1.c; j++) {
    const x = w1.v[i * w1.c + j]! * scale;
    for (let k = 0; k < w2.r; k++) for (let l = 0; l < w2.c; l++) out[(i * w2.r + k) * cols + j * w2.c + l] = x * w2.v[k * w2.c + l]!;
  }
  return { v: out };
}

function denseRelErr(want: Float64Array, got: Float64Array, s: number): number {
  let d = 0, n = 0;
  for (let i = 0; i < want.length; i++) {
    d += (s * want[i]! - got[i]!) ** 2;
    n += (s * want[i]!) ** 2;
  }
  return n === 0 ? (d === 0 ? 0 : Infinity) : Math.sqrt(d / n);
}

/** Every module of `input` compared with `output`: rel. error of output delta vs S x input delta, per module. */
function compareDeltas(input: Loaded, output: Loaded, s: number): Map<string, number> {
  const errs = new Map<string, number>();
  const outPlaced = new Map(output.parsed.placed.map((m) => [m.base, m]));
  for (const m of input.parsed.placed) {
    const o = outPlaced.get(m.base);
    if (!o) {
      errs.set(m.base, Infinity);
      continue;
    }
    const f = (l: Loaded, k: string) => mat(l.tensors.get(k)!);
    errs.set(m.base, factoredRelErr({ s: s * scaleOf(m), B: f(input, m.keys.up!), A: f(input, m.keys.down!) }, { s: scaleOf(o), B: f(output, o.keys.up!), A: f(output, o.keys.down!) }));
    if (m.keys.bias) errs.set(`${m.base} (bias)`, denseRelErr(f(input, m.keys.bias).v.map((x) => x * scaleOf(m)), f(output, o.keys.bias!).v.map((x) => x * scaleOf(o)), s));
  }
  for (const g of groupKeys([...input.tensors.keys()]).modules) {
    if (g.keys.down || g.keys.up || g.extra.length === 0) continue;
    const params = g.extra.map((k) => k.slice(g.base.length + 1));
    const want = lycorisDelta(input, g.base, params), got = lycorisDelta(output, g.base, params);
    errs.set(g.base, denseRelErr(want.v, got.v, s));
    if (want.bias) errs.set(`${g.base} (diff_b)`, denseRelErr(want.bias, got.bias!, s));
  }
  return errs;
}

const sdxl = architecture("sdxl");
const sdxlPick = (m: ModuleSpec) => /^input_blocks\.4\.1\.transformer_blocks\.0\.attn[12]\.to_[qk]$/.test(m.native) || m.native === "input_blocks.4.0.in_layers.2" || m.native === "input_blocks.4.0.skip_connection";
const flux1Pick = (m: ModuleSpec) => /^(double_blocks\.0\.img_attn\.(qkv|proj)|single_blocks\.1\.linear2)$/.test(m.native) || m.native === "img_in";
const kleinPick = (m: ModuleSpec) => /^double_blocks\.0\.(img_attn\.(qkv|proj)|txt_mlp\.2)$/.test(m.native);
const alphas = (_m: unknown, rank: number, i: number) => [1, 2 * rank, rank, undefined][i % 4];
const f32 = (name: string, shape: number[], values: Float32Array): OutputTensor => ({ name, dtype: "F32", shape, data: encodeFromF32("F32", values) });

/** Kohya/LyCORIS names: a LoKr, a LoHa (Tucker-free), a full diff with bias and a plain LoRA in one SDXL file. */
async function lycorisFile(path: string): Promise<void> {
  const next = rng(7);
  const r = (n: number) => randomF32(n, next, 0.1);
  const stem = (native: string) => `lora_unet_${native.replace(/\./g, "_")}`;
  const [q, k, v, o] = ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0"].map((p) => stem(`input_blocks.4.1.transformer_blocks.0.${p}`)) as [string, string, string, string];
  await writeSafetensors({
    path,
    metadata: { ss_network_module: "lycoris.kohya", ss_network_alpha: "4" },
    tensors: [
      // LoKr: 640 x 640 = kron([8, 8], [80, 80]), w2 of rank 4 (alpha applies), w1 full.
      f32(`${q}.lokr_w1`, [8, 8], r(64)), f32(`${q}.lokr_w2_a`, [80, 4], r(320)), f32(`${q}.lokr_w2_b`, [4, 80], r(320)), f32(`${q}.alpha`, [], new Float32Array([2])),
      // LoHa rank 4, alpha 8.
      f32(`${k}.hada_w1_a`, [640, 4], r(2560)), f32(`${k}.hada_w1_b`, [4, 640], r(2560)), f32(`${k}.hada_w2_a`, [640, 4], r(2560)), f32(`${k}.hada_w2_b`, [4, 640], r(2560)), f32(`${k}.alpha`, [], new Float32Array([8])),
      // LoKr with w1 factored too (w1_a is the one scaled).
      f32(`${v}.lokr_w1_a`, [8, 2], r(16)), f32(`${v}.lokr_w1_b`, [2, 8], r(16)), f32(`${v}.lokr_w2`, [80, 80], r(6400)),
      // A plain LoRA beside them.
      f32(`${o}.lora_down.weight`, [4, 640], r(2560)), f32(`${o}.lora_up.weight`, [640, 4], r(2560)), f32(`${o}.alpha`, [], new Float32Array([1])),
      // A full difference with its bias.
      f32(`${stem("input_blocks.4.1.proj_in")}.diff`, [640, 640], r(640 * 640)), f32(`${stem("input_blocks.4.1.proj_in")}.diff_b`, [640], r(640)),
    ],
  });
}

/** diffusers names with a peft lora_B.bias (peft `lora_bias=True`): the bias is part of the delta. */
async function biasFile(path: string): Promise<void> {
  const next = rng(9);
  const r = (n: number) => randomF32(n, next, 0.1);
  const m = sdxl.modules.find((x) => x.native === "input_blocks.4.1.proj_out")!;
  const s = `unet.${m.parts[0]!.name}`;
  await writeSafetensors({ path, tensors: [f32(`${s}.lora_A.weight`, [4, 640], r(2560)), f32(`${s}.lora_B.weight`, [640, 4], r(2560)), f32(`${s}.lora_B.bias`, [640], r(640))] });
}

const FORMATS: Array<[string, (dir: string) => Promise<string>]> = [
  ["kohya SDXL (alphas 1, 2r, r, none; conv 3x3 and 1x1)", async (dir) => {
    const p = join(dir, "kohya-sdxl.safetensors");
    await buildLora({ path: p, arch: "sdxl", format: "kohya", pick: sdxlPick, rank: 4, alpha: alphas, seed: 11, metadata: { ss_network_alpha: "4", ss_network_dim: "4", modelspec_title: "x" } });
    return p;
  }],
  ["kohya FLUX.1 bf16 (fused qkv)", async (dir) => {
    const p = join(dir, "kohya-flux1.safetensors");
    await buildLora({ path: p, arch: "flux1", format: "kohya", pick: flux1Pick, rank: 4, alpha: alphas, dtype: "BF16", seed: 12 });
    return p;
  }],
  ["diffusers SDXL fp16, peft lora_alpha in the metadata", async (dir) => {
    const p = join(dir, "diffusers-sdxl.safetensors");
    await buildLora({ path: p, arch: "sdxl", format: "diffusers", pick: sdxlPick, rank: 4, dtype: "F16", seed: 13, metadata: { format: "pt", lora_adapter_metadata: JSON.stringify({ "unet.lora_alpha": 8, "unet.r": 4 }) } });
    return p;
  }],
  ["diffusers FLUX.1 (qkv split into to_q/to_k/to_v)", async (dir) => {
    const p = join(dir, "diffusers-flux1.safetensors");
    await buildLora({ path: p, arch: "flux1", format: "diffusers", pick: flux1Pick, rank: 4, seed: 14 });
    return p;
  }],
  ["ComfyUI FLUX.1 (diffusion_model. + lora_up/down + alpha)", async (dir) => {
    const k = join(dir, "comfy-src.safetensors"), p = join(dir, "comfy-flux1.safetensors");
    await buildLora({ path: k, arch: "flux1", format: "kohya", pick: flux1Pick, rank: 4, alpha: alphas, seed: 15 });
    await collectEvents(convertLora({ input: k, output: p, to: "comfy" }));
    return p;
  }],
  ["ai-toolkit FLUX.2 klein 4B (diffusion_model. + lora_A/B)", async (dir) => {
    const p = join(dir, "aitk-klein.safetensors");
    await buildLora({ path: p, arch: "flux2-klein-4b", format: "ai-toolkit-flux2", pick: kleinPick, rank: 4, seed: 16, metadata: { software: '{"name":"ai-toolkit"}' } });
    return p;
  }],
  ["LyCORIS SDXL: LoKr, LoHa, full diff and a plain LoRA", async (dir) => {
    const p = join(dir, "lycoris-sdxl.safetensors");
    await lycorisFile(p);
    return p;
  }],
  ["peft lora_B.bias", async (dir) => {
    const p = join(dir, "bias.safetensors");
    await biasFile(p);
    return p;
  }],
];

const sha = async (path: string) => createHash("sha256").update(await readFile(path)).digest("hex");
const HASH_KEYS = new Set(["sshs_model_hash", "sshs_legacy_hash", "modelspec.hash_sha256"]);

describe("merge X:S scales one LoRA's delta by S exactly (one input, cat)", () => {
  it.each(FORMATS)("%s: every module's delta x S, same keys, shapes, rank, alphas and metadata; input untouched", async (_name, build) => {
    const dir = await tempDir();
    const input = await build(dir);
    const before = await sha(input);
    const a = await load(input);
    for (const s of [0.5, 2, -1]) {
      const out = join(dir, `out-${s}.safetensors`);
      const events = await collectEvents(mergeLora({ inputs: [{ path: input, weight: s }], output: out, method: "cat" }));
      const done = events.find((e) => e.type === "done") as { result: Record<string, unknown> } | undefined;
      expect(done?.result).toMatchObject({ output: out, scale: s, tensors: a.tensors.size });
      // A bake is one adapter: the stacking rule's warnings are not for it.
      expect(events.filter((e) => e.type === "warning")).toEqual([]);
      const b = await load(out);
      // Keys, dtypes and shapes (so the rank) unchanged.
      expect([...b.tensors].map(([k, t]) => [k, t.dtype, t.shape]).sort()).toEqual([...a.tensors].map(([k, t]) => [k, t.dtype, t.shape]).sort());
      expect(b.parsed.placed.map((m) => [m.base, m.rank, m.alpha]).sort()).toEqual(a.parsed.placed.map((m) => [m.base, m.rank, m.alpha]).sort());
      expect(b.parsed.format).toBe(a.parsed.format);
      // Every module: output delta == S x input delta.
      const errs = compareDeltas(a, b, s);
      expect(errs.size).toBeGreaterThan(0);
      for (const [module, err] of errs) expect(err, `${module} x ${s}`).toBeLessThan(1e-6);
      // Only the scaled factor of each module changed: the rest (down/A, alphas, LoKr w2, ...) are byte copies.
      const changed = [...a.tensors.keys()].filter((k) => Buffer.compare(Buffer.from(a.tensors.get(k)!.bytes), Buffer.from(b.tensors.get(k)!.bytes)) !== 0);
      expect(changed.every((k) => /(lora_up\.weight|lora_B\.weight|lora_B\.bias|hada_w1_a|lokr_w1|lokr_w1_a|\.diff|\.diff_b)$/.test(k)), changed.join(", ")).toBe(true);
      // The input's metadata is kept (hashes recomputed by the writer), plus a note of the scale.
      for (const [k, v] of Object.entries(a.metadata)) if (!HASH_KEYS.has(k)) expect(b.metadata[k], k).toBe(v);
      expect(JSON.parse(b.metadata["loraspec.scale"]!)).toMatchObject({ scale: s, file: basename(input), format: a.parsed.format });
      expect(await sha(input), "the input's bytes").toBe(before);
    }
  });

  it.runIf(HAS_PYTHON)("the plain-LoRA formats agree with the Python oracle (the weighted sum of one input)", async () => {
    const dir = await tempDir();
    const scales = [0.5, 2, -1];
    for (const [i, [name, build]] of FORMATS.slice(0, 6).entries()) {
      const input = await build(dir);
      const s = scales[i % 3]!;
      const out = join(dir, `oracle-${i}.safetensors`);
      await collectEvents(mergeLora({ inputs: [{ path: input, weight: s }], output: out, method: "cat" }));
      const r = oracle("convert_oracle.py", ["weighted", `${input}:${s}`, out]);
      expect([r.missing_in_ours, r.extra_in_ours, r.modules > 0], name).toEqual([[], [], true]);
      expect(r.max_rel_err, name).toBeLessThan(1e-6);
    }
  }, 120_000);

  it("a scaled file scaled again keeps the earlier note; 0.5 then 2 gives back the input's factors bit for bit", async () => {
    const dir = await tempDir();
    const input = await FORMATS[0]![1](dir);
    const half = join(dir, "half.safetensors"), back = join(dir, "back.safetensors");
    await collectEvents(mergeLora({ inputs: [{ path: input, weight: 0.5 }], output: half, method: "cat" }));
    await collectEvents(mergeLora({ inputs: [{ path: half, weight: 2 }], output: back, method: "cat" }));
    const [a, b] = [await load(input), await load(back)];
    for (const [k, t] of a.tensors) expect(Buffer.compare(Buffer.from(t.bytes), Buffer.from(b.tensors.get(k)!.bytes)), k).toBe(0);
    expect(JSON.parse(b.metadata["loraspec.scale"]!)).toMatchObject({ scale: 2, previous: { scale: 0.5, file: basename(input) } });
  });
});

const codeOf = async (run: Promise<unknown>) => (await run.then(() => undefined, (e: { code?: string; field?: string; message?: string }) => e));

describe("merge X:S refusals", () => {
  it("S = 0 is refused before any file is read (it would erase the LoRA); a negative S is allowed", async () => {
    const error = await codeOf(collectEvents(mergeLora({ inputs: [{ path: "/nonexistent/a.safetensors", weight: 0 }], output: "/nonexistent/o.safetensors", method: "cat" })));
    expect([error?.code, error?.field]).toEqual(["E_USAGE", "weight of /nonexistent/a.safetensors"]);
    expect(error?.message).toMatch(/erase/);
    expect(checkMergeOptions({ inputs: [{ path: "a", weight: -1 }], method: "cat" }).inputs).toEqual([{ path: "a", weight: -1 }]);
  });

  it.each(["ties", "dare", "svd", "linear"])("one input with --method %s is refused naming cat as the way to scale", (method) => {
    let error: { code?: string; field?: string; message?: string; hint?: string } | undefined;
    try {
      checkMergeOptions({ inputs: [{ path: "a.safetensors", weight: 0.5 }], method, ...(method === "svd" ? { rank: 4 } : {}) });
    } catch (e) {
      error = e as typeof error;
    }
    expect([error?.code, error?.field]).toEqual(["E_USAGE", "--method"]);
    expect(`${error?.message} ${error?.hint}`).toMatch(/--method cat/);
  });

  it("--to with one input is refused (the keys are kept; convert afterwards); no input at all is refused", () => {
    expect(() => checkMergeOptions({ inputs: [{ path: "a", weight: 2 }], method: "cat", to: "kohya" })).toThrow(/--to does not apply/);
    expect(() => checkMergeOptions({ inputs: [], method: "cat" })).toThrow(/at least one/);
  });

  it("DoRA and OFT modules are refused with E_NOT_SUPPORTED naming the module; the output is not written", async () => {
    const dir = await tempDir();
    const next = rng(5);
    const s = "lora_unet_input_blocks_4_1_proj_in";
    const cases: Array<[string, OutputTensor[], RegExp]> = [
      ["dora", [f32(`${s}.lora_down.weight`, [4, 640], randomF32(2560, next)), f32(`${s}.lora_up.weight`, [640, 4], randomF32(2560, next)), f32(`${s}.dora_scale`, [640, 1], randomF32(640, next))], /DoRA/],
      ["oft", [f32(`${s}.oft_blocks`, [4, 160, 160], randomF32(4 * 160 * 160, next)), f32("lora_unet_input_blocks_4_1_proj_out.lora_down.weight", [4, 640], randomF32(2560, next)), f32("lora_unet_input_blocks_4_1_proj_out.lora_up.weight", [640, 4], randomF32(2560, next))], /OFT/],
    ];
    for (const [name, tensors, why] of cases) {
      const input = join(dir, `${name}.safetensors`), out = join(dir, `${name}-out.safetensors`);
      await writeSafetensors({ path: input, tensors });
      const error = await codeOf(collectEvents(mergeLora({ inputs: [{ path: input, weight: 2 }], output: out, method: "cat" })));
      expect(error?.code, name).toBe("E_NOT_SUPPORTED");
      expect(error?.message, name).toMatch(why);
      expect(error?.message, name).toContain(s);
      expect(existsSync(out), name).toBe(false);
    }
  });
});

const BIN = join(REPO, "bin/loraspec.mjs");
const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { cwd: REPO, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });

describe("loraspec merge X:S (CLI)", () => {
  it("writes the scaled LoRA and says so; S = 0 and one input with ties exit 2 with E_USAGE", async () => {
    const dir = await tempDir();
    const input = await FORMATS[0]![1](dir);
    const before = await sha(input);
    const out = join(dir, "out.safetensors");
    const r = cli(["merge", `${input}:2`, "-o", out]);
    expect(r.status, r.stderr).toBe(0);
    const n = (await load(input)).tensors.size;
    expect(r.stderr).toContain(`wrote ${out} (scaled x2, ${n} tensors, sdxl)`);
    const zero = cli(["merge", `${input}:0`, "-o", join(dir, "zero.safetensors")]);
    expect([zero.status, zero.stderr.includes("E_USAGE"), /erase/.test(zero.stderr)]).toEqual([2, true, true]);
    const ties = cli(["merge", `${input}:0.5`, "--method", "ties", "-o", join(dir, "ties.safetensors")]);
    expect([ties.status, ties.stderr.includes("E_USAGE"), ties.stderr.includes("--method cat")]).toEqual([2, true, true]);
    expect(existsSync(join(dir, "zero.safetensors")) || existsSync(join(dir, "ties.safetensors"))).toBe(false);
    expect(await sha(input)).toBe(before);
  }, 60_000);
});
