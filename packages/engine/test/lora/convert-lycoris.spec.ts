import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { architecture } from "@loraspec/core/lora/architectures.js";
import { decodeToF32, encodeFromF32 } from "@loraspec/core/lora/dtype.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { writeSafetensors, type OutputTensor } from "@loraspec/engine/lora/write-safetensors.js";
import { randomF32, rng, tempDir } from "./helpers.js";

/** Two real SDXL attention modules ([640, 640] and [1280, 2048]) in both namings. */
const sdxl = architecture("sdxl");
const MODS = ["down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", "down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_k"].map(
  (d) => sdxl.modules.find((m) => m.parts.length === 1 && m.parts[0]!.name === d)!,
);
const peftStem = (i: number) => `unet.${MODS[i]!.parts[0]!.name}`;
const kohyaStem = (i: number) => `lora_unet_${MODS[i]!.native.replace(/\./g, "_")}`;
const t = (name: string, shape: number[], values: Float32Array): OutputTensor => ({ name, dtype: "F32", shape, data: encodeFromF32("F32", values) });
const next = rng(3);
const rand = (n: number) => randomF32(n, next, 0.1);

async function read(path: string) {
  const f = await openSafetensors({ path });
  try {
    const out = new Map<string, { shape: number[]; v: Float32Array }>();
    for (const x of f.tensors) out.set(x.name, { shape: x.shape, v: decodeToF32(x.dtype, await f.readBytes(x.name)) });
    return { tensors: out, metadata: f.metadata };
  } finally {
    await f.close();
  }
}

async function convert(tensors: OutputTensor[], to: "diffusers" | "kohya" | "comfy", metadata: Record<string, string> = {}) {
  const dir = await tempDir();
  await writeSafetensors({ path: join(dir, "in.safetensors"), tensors, metadata });
  await collectEvents(convertLora({ input: join(dir, "in.safetensors"), output: join(dir, "out.safetensors"), to }));
  return read(join(dir, "out.safetensors"));
}

const close = (a: Float32Array, b: Float32Array, k = 1) => expect(Math.max(...a.map((x, i) => Math.abs(x - k * b[i]!)))).toBeLessThan(1e-6);

describe("convert carries LoKr, LoHa and DoRA modules (plan-lycoris.ts)", () => {
  it("peft LoKr -> Kohya/LyCORIS names: peft's alpha/r baked into lokr_w1, alpha = rank for the decomposed w2", async () => {
    // [640, 640] = kron([8, 8], [80, 80]); [1280, 2048] = kron([16, 16], [80, 128]); w2 rank 4
    const dims = [[8, 8, 80, 80], [16, 16, 80, 128]];
    const src = dims.flatMap(([a, b, c, d], i) => [t(`${peftStem(i)}.lokr_w1`, [a!, b!], rand(a! * b!)), t(`${peftStem(i)}.lokr_w2_a`, [c!, 4], rand(c! * 4)), t(`${peftStem(i)}.lokr_w2_b`, [4, d!], rand(4 * d!))]);
    const out = await convert(src, "kohya", { lora_adapter_metadata: JSON.stringify({ "unet.alpha": 2, "unet.r": 4, "unet.peft_type": "LOKR" }), ss_network_module: "lycoris.kohya" });
    expect([...out.tensors.keys()].sort()).toEqual([0, 1].flatMap((i) => ["alpha", "lokr_w1", "lokr_w2_a", "lokr_w2_b"].map((p) => `${kohyaStem(i)}.${p}`)).sort());
    close(out.tensors.get(`${kohyaStem(0)}.lokr_w1`)!.v, decodeToF32("F32", src[0]!.data as Uint8Array), 0.5);
    close(out.tensors.get(`${kohyaStem(0)}.lokr_w2_b`)!.v, decodeToF32("F32", src[2]!.data as Uint8Array));
    expect(out.tensors.get(`${kohyaStem(1)}.alpha`)!.v[0]).toBe(4);
    expect(out.metadata.ss_network_module).toBe("lycoris.kohya");
  });

  it("Kohya LoHa -> diffusers names: alpha/rank baked into hada_w1_a, no alpha key", async () => {
    const [out0, in0] = MODS[0]!.shape as [number, number];
    const src = [
      t(`${kohyaStem(0)}.hada_w1_a`, [out0, 4], rand(out0 * 4)), t(`${kohyaStem(0)}.hada_w1_b`, [4, in0], rand(4 * in0)),
      t(`${kohyaStem(0)}.hada_w2_a`, [out0, 4], rand(out0 * 4)), t(`${kohyaStem(0)}.hada_w2_b`, [4, in0], rand(4 * in0)),
      t(`${kohyaStem(0)}.alpha`, [], new Float32Array([8])),
    ];
    const out = await convert(src, "diffusers");
    expect([...out.tensors.keys()].sort()).toEqual(["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"].map((p) => `${peftStem(0)}.${p}`));
    close(out.tensors.get(`${peftStem(0)}.hada_w1_a`)!.v, decodeToF32("F32", src[0]!.data as Uint8Array), 2);
    close(out.tensors.get(`${peftStem(0)}.hada_w2_a`)!.v, decodeToF32("F32", src[2]!.data as Uint8Array));
  });

  it("a Kohya LoKr with both factors full applies no alpha (LyCORIS): copied as is, no alpha written", async () => {
    const src = [t(`${kohyaStem(0)}.lokr_w1`, [8, 8], rand(64)), t(`${kohyaStem(0)}.lokr_w2`, [80, 80], rand(6400)), t(`${kohyaStem(0)}.alpha`, [], new Float32Array([3]))];
    const out = await convert(src, "kohya");
    expect([...out.tensors.keys()].sort()).toEqual([`${kohyaStem(0)}.lokr_w1`, `${kohyaStem(0)}.lokr_w2`]);
    close(out.tensors.get(`${kohyaStem(0)}.lokr_w1`)!.v, decodeToF32("F32", src[0]!.data as Uint8Array));
  });

  it("peft DoRA <-> Kohya: lora_magnitude_vector [out] is dora_scale [out, 1], the LoRA part as usual", async () => {
    const [o, i] = MODS[0]!.shape as [number, number];
    const src = [t(`${peftStem(0)}.lora_A.weight`, [4, i], rand(4 * i)), t(`${peftStem(0)}.lora_B.weight`, [o, 4], rand(o * 4)), t(`${peftStem(0)}.lora_magnitude_vector`, [o], rand(o))];
    const k = await convert(src, "kohya");
    expect([...k.tensors.keys()].sort()).toEqual(["alpha", "dora_scale", "lora_down.weight", "lora_up.weight"].map((p) => `${kohyaStem(0)}.${p}`));
    expect(k.tensors.get(`${kohyaStem(0)}.dora_scale`)!.shape).toEqual([o, 1]);
    close(k.tensors.get(`${kohyaStem(0)}.dora_scale`)!.v, decodeToF32("F32", src[2]!.data as Uint8Array));
    const back = await convert([...k.tensors].map(([name, x]) => t(name, x.shape, x.v)), "diffusers");
    expect(back.tensors.get(`${peftStem(0)}.lora_magnitude_vector`)!.shape).toEqual([o]);
  });

  it("a LoKr on one part of a fused projection (FLUX.1 single block to_q of linear1) is refused, never split", async () => {
    const src = [t("transformer.single_transformer_blocks.0.attn.to_q.lokr_w1", [48, 48], rand(48 * 48)), t("transformer.single_transformer_blocks.0.attn.to_q.lokr_w2", [64, 64], rand(64 * 64))];
    await expect(convert(src, "kohya")).rejects.toMatchObject({ code: expect.stringMatching(/^E_LORA_/) });
  });
});
