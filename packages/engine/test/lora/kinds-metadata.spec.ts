import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { encodeFromF32 } from "@loraspec/core/lora/dtype.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { inspectLora } from "@loraspec/engine/lora/inspect-lora.js";
import { mergeLora, type MergeMethod } from "@loraspec/engine/lora/merge-lora.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { writeSafetensors, type OutputTensor } from "@loraspec/engine/lora/write-safetensors.js";
import type { SpawnFn } from "@loraspec/engine/worker/run-worker.js";
import { buildLora, randomF32, rng, tempDir } from "./helpers.js";

const PREFIX = "lora_unet_input_blocks_4_1_transformer_blocks_0_";
const f32 = (name: string, shape: number[], next: () => number): OutputTensor => ({ name, dtype: "F32", shape, data: encodeFromF32("F32", randomF32(shape.reduce((a, b) => a * b, 1), next, 0.1)) });
const sdxlPick = (m: { native: string }) => /^input_blocks\.4\.1\.transformer_blocks\.0\.attn1\.to_(q|out\.0)$/.test(m.native);

async function lycoris(path: string, kind: "loha" | "lokr"): Promise<void> {
  const next = rng(4);
  const s = `${PREFIX}attn1_to_k`;
  const tensors = kind === "loha"
    ? [f32(`${s}.hada_w1_a`, [640, 4], next), f32(`${s}.hada_w1_b`, [4, 640], next), f32(`${s}.hada_w2_a`, [640, 4], next), f32(`${s}.hada_w2_b`, [4, 640], next)]
    : [f32(`${s}.lokr_w1`, [8, 8], next), f32(`${s}.lokr_w2_a`, [80, 4], next), f32(`${s}.lokr_w2_b`, [4, 80], next)];
  await writeSafetensors({ path, tensors: [...tensors, { name: `${s}.alpha`, dtype: "F32", shape: [], data: encodeFromF32("F32", new Float32Array([4])) }] });
}

describe("merge of a LoHa or LoKr file with another: E_NOT_SUPPORTED naming the kind and the module (defect 3)", () => {
  const CASES = (["loha", "lokr"] as const).flatMap((kind) => (["cat", "svd", "linear", "ties"] as MergeMethod[]).flatMap((method) => [0, 1].map((position) => ({ kind, method, position }))));
  it.each(CASES)("$kind as input $position, --method $method", async ({ kind, method, position }) => {
    const dir = await tempDir();
    const ly = join(dir, `${kind}.safetensors`), plain = join(dir, "a.safetensors");
    await lycoris(ly, kind);
    await buildLora({ path: plain, arch: "sdxl", format: "kohya", pick: sdxlPick, rank: 4, alpha: () => 2 });
    // inspect says what it is, and for which base: the merge must not say "cannot tell which base model".
    expect((await inspectLora({ path: ly })).architecture?.id).toBe("sdxl");
    const paths = position === 0 ? [ly, plain] : [plain, ly];
    const error = await collectEvents(mergeLora({ inputs: paths.map((path) => ({ path, weight: 0.5 })), output: join(dir, "m.safetensors"), method })).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_NOT_SUPPORTED", file: ly, details: { kind, module: `${PREFIX}attn1_to_k`, input: position + 1 } });
    expect((error as Error).message).toContain(kind === "loha" ? "LoHa" : "LoKr");
    expect((error as Error).message).toContain("SDXL");
  });
});

async function metadataOf(path: string): Promise<Record<string, string>> {
  const f = await openSafetensors({ path });
  try {
    return f.metadata;
  } finally {
    await f.close();
  }
}

describe("convert keeps ss_network_alpha / ss_network_dim true of the file it writes (defect 4)", () => {
  it("kohya alpha 2 rank 4 -> diffusers drops ss_network_alpha (no alpha there), keeps dim; -> kohya again (alpha = rank 4) does not bring the stale 2 back", async () => {
    const dir = await tempDir();
    const a = join(dir, "a.safetensors"), d = join(dir, "d.safetensors"), k = join(dir, "k.safetensors"), c = join(dir, "c.safetensors");
    await buildLora({ path: a, arch: "sdxl", format: "kohya", pick: sdxlPick, rank: 4, alpha: () => 2, metadata: { ss_network_alpha: "2", ss_network_dim: "4", ss_network_module: "networks.lora" } });
    await collectEvents(convertLora({ input: a, output: d, to: "diffusers" }));
    expect(await metadataOf(d)).toMatchObject({ ss_network_dim: "4", ss_network_module: "networks.lora" });
    expect((await metadataOf(d)).ss_network_alpha).toBeUndefined();
    await collectEvents(convertLora({ input: d, output: k, to: "kohya" }));
    expect((await inspectLora({ path: k })).modules.map((m) => m.alpha)).toEqual([4, 4]);
    expect((await metadataOf(k)).ss_network_alpha).toBeUndefined();
    // kohya -> comfy writes the same alphas: the trainer's text is kept as it was.
    await collectEvents(convertLora({ input: a, output: c, to: "comfy" }));
    expect(await metadataOf(c)).toMatchObject({ ss_network_alpha: "2", ss_network_dim: "4" });
  });

  it("a diffusers file whose metadata says alpha 4 -> kohya with alpha = rank 8: ss_network_alpha updated to 8", async () => {
    const dir = await tempDir();
    const d = join(dir, "d.safetensors"), k = join(dir, "k.safetensors");
    await buildLora({ path: d, arch: "sdxl", format: "diffusers", pick: sdxlPick, rank: 8, metadata: { ss_network_alpha: "4", ss_network_dim: "8" } });
    await collectEvents(convertLora({ input: d, output: k, to: "kohya" }));
    expect(await metadataOf(k)).toMatchObject({ ss_network_alpha: "8", ss_network_dim: "8" });
  });

  it("diffusers FLUX.1 (q, k, v apart) -> kohya joins them (rank 3r, alpha 3r beside rank r modules): both keys removed, they would be false", async () => {
    const dir = await tempDir();
    const d = join(dir, "d.safetensors"), k = join(dir, "k.safetensors");
    const pick = (m: { native: string }) => /^double_blocks\.0\.img_attn\.(qkv|proj)$/.test(m.native);
    await buildLora({ path: d, arch: "flux1", format: "diffusers", pick, rank: 4, metadata: { ss_network_alpha: "4", ss_network_dim: "4" } });
    await collectEvents(convertLora({ input: d, output: k, to: "kohya" }));
    expect(new Set((await inspectLora({ path: k })).modules.map((m) => m.rank))).toEqual(new Set([12, 4]));
    const meta = await metadataOf(k);
    expect([meta.ss_network_alpha, meta.ss_network_dim]).toEqual([undefined, undefined]);
  });
});

describe("a worker merge whose F16 result overflows is refused, not converted with its Inf (the worker writes the first input's width)", () => {
  it("svd: a stand-in worker writes a result with Inf; E_NOT_SUPPORTED naming the factor, no output", async () => {
    const dir = await tempDir();
    const a = join(dir, "a.safetensors"), b = join(dir, "b.safetensors"), inf = join(dir, "inf.safetensors"), out = join(dir, "m.safetensors");
    await buildLora({ path: a, arch: "sdxl", format: "kohya", pick: sdxlPick, rank: 4, alpha: () => 4, dtype: "F16" });
    await buildLora({ path: b, arch: "sdxl", format: "kohya", pick: sdxlPick, rank: 4, alpha: () => 4, dtype: "F16", seed: 2 });
    // What an F16 result past 65504 looks like: the same layout, one up factor full of Inf.
    await buildLora({ path: inf, arch: "sdxl", format: "kohya", pick: sdxlPick, rank: 4, alpha: () => 4, dtype: "F16", seed: 3 });
    const f = await openSafetensors({ path: inf });
    const tensors: OutputTensor[] = [];
    for (const t of f.tensors) {
      const bytes = await f.readBytes(t.name);
      tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: t.name.endsWith("attn1_to_q.lora_up.weight") ? encodeFromF32("F16", new Float32Array(bytes.length / 2).fill(1e6)) : bytes.slice() });
    }
    await f.close();
    await writeSafetensors({ path: inf, tensors });
    const script = `const fs=require("fs");let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>{const r=JSON.parse(s);fs.copyFileSync(${JSON.stringify(inf)},r.output);console.log(JSON.stringify({type:"done",result:{}}));});`;
    const fake: SpawnFn = (_python, _args, options) => spawn(process.execPath, ["-e", script], options);
    const error = await collectEvents(mergeLora({ inputs: [{ path: a, weight: 0.5 }, { path: b, weight: 0.5 }], output: out, method: "svd", rank: 4, worker: { spawn: fake } })).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_NOT_SUPPORTED", field: `tensor "${PREFIX}attn1_to_q.lora_up.weight"` });
    expect(existsSync(out)).toBe(false);
  });
});
