import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { architecture } from "@loraspec/core/lora/architectures.js";
import { encodeFromF32 } from "@loraspec/core/lora/dtype.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { writeSafetensors, type OutputTensor } from "@loraspec/engine/lora/write-safetensors.js";
import { buildLora, fluxSubset, HAS_PYTHON, oracle, randomF32, rng, tempDir } from "./helpers.js";

// FLUX's fused qkv / linear1 split into diffusers' q, k, v (, proj_mlp) and join back. A round trip
// must keep the file: the split copies one down matrix to every part, so the join takes it once
// (rank r, not 3r or 4r), and a part whose up rows are all zero is no module (a tester saw ranks
// 4 -> 12 -> 36 and zero-valued add_k/add_v modules appear, the file 1.3 -> 11 MB).
const convert = (input: string, output: string, to: "diffusers" | "kohya" | "comfy") => collectEvents(convertLora({ input, output, to }));

async function shapes(path: string): Promise<Map<string, number[]>> {
  const f = await openSafetensors({ path });
  const out = new Map(f.tensors.map((t) => [t.name, [...t.shape]]));
  await f.close();
  return out;
}

/** A diffusers FLUX.1 file that trains some parts of fused modules only: to_q + add_q_proj of double block 0, q/k/v/proj_mlp of single block 0. */
async function partialDiffusers(path: string): Promise<void> {
  const arch = architecture("flux1");
  const next = rng(5);
  const tensors: OutputTensor[] = [];
  const want = new Set(["transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.add_q_proj", "single_transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.attn.to_k", "single_transformer_blocks.0.attn.to_v", "single_transformer_blocks.0.proj_mlp"]);
  for (const m of arch.modules.filter((x) => x.component === "transformer")) {
    for (const p of m.parts) {
      if (!want.has(p.name)) continue;
      const r = 4;
      tensors.push({ name: `transformer.${p.name}.lora_A.weight`, dtype: "F32", shape: [r, m.shape[1]!], data: encodeFromF32("F32", randomF32(r * m.shape[1]!, next, 0.05)) });
      tensors.push({ name: `transformer.${p.name}.lora_B.weight`, dtype: "F32", shape: [p.end - p.start, r], data: encodeFromF32("F32", randomF32((p.end - p.start) * r, next, 0.05)) });
    }
  }
  expect(tensors).toHaveLength(2 * want.size);
  await writeSafetensors({ path, tensors });
}

describe("FLUX.1 fused modules: convert round trips keep ranks and modules", () => {
  it("kohya -> diffusers -> kohya: every module back at its own rank (one shared down), -> comfy too", async () => {
    const dir = await tempDir();
    const src = join(dir, "k.safetensors");
    await buildLora({ path: src, arch: "flux1", format: "kohya", pick: fluxSubset, rank: 4, alpha: (m, r, i) => [1, 2 * r, r, undefined][i % 4] });
    await convert(src, join(dir, "d.safetensors"), "diffusers");
    await convert(join(dir, "d.safetensors"), join(dir, "k2.safetensors"), "kohya");
    await convert(join(dir, "d.safetensors"), join(dir, "c.safetensors"), "comfy");
    const [a, b] = [await shapes(src), await shapes(join(dir, "k2.safetensors"))];
    expect([...b.keys()].filter((k) => !k.endsWith(".alpha")).sort()).toEqual([...a.keys()].filter((k) => !k.endsWith(".alpha")).sort());
    for (const [k, s] of a) if (!k.endsWith(".alpha")) expect([k, b.get(k)]).toEqual([k, s]);
    const c = await shapes(join(dir, "c.safetensors"));
    expect(c.get("diffusion_model.double_blocks.0.img_attn.qkv.lora_down.weight")).toEqual([4, 3072]);
    expect(c.get("diffusion_model.single_blocks.0.linear1.lora_down.weight")).toEqual([4, 3072]);
    if (HAS_PYTHON) {
      for (const back of ["k2.safetensors"]) {
        const r = oracle("convert_oracle.py", ["same", src, join(dir, back)]);
        expect([r.missing_in_ours, r.extra_in_ours]).toEqual([[], []]);
        expect(r.max_rel_err).toBeLessThan(1e-6);
      }
    }
  });

  it("diffusers (some parts only) -> kohya -> diffusers -> kohya: same modules, same ranks, no zero modules, file size kept", async () => {
    const dir = await tempDir();
    const src = join(dir, "d.safetensors");
    await partialDiffusers(src);
    await convert(src, join(dir, "k.safetensors"), "kohya");
    await convert(join(dir, "k.safetensors"), join(dir, "d2.safetensors"), "diffusers");
    await convert(join(dir, "d2.safetensors"), join(dir, "k2.safetensors"), "kohya");
    const [d, d2] = [await shapes(src), await shapes(join(dir, "d2.safetensors"))];
    // The first join is block-diagonal (the source's four downs differ): rank 16 for linear1, and
    // only q's rows of the txt qkv carry anything; the split then writes q/k/v/mlp at 16 and add_q alone.
    expect([...d2.keys()].map((k) => k.replace(/\.lora_[AB]\.weight$/, "")).filter((k, i, all) => all.indexOf(k) === i).sort()).toEqual(
      [...d.keys()].map((k) => k.replace(/\.lora_[AB]\.weight$/, "")).filter((k, i, all) => all.indexOf(k) === i).sort(),
    );
    const [k, k2] = [await shapes(join(dir, "k.safetensors")), await shapes(join(dir, "k2.safetensors"))];
    expect([...k2.entries()].sort()).toEqual([...k.entries()].sort());
    if (HAS_PYTHON) {
      const r = oracle("convert_oracle.py", ["same", src, join(dir, "d2.safetensors")]);
      expect([r.missing_in_ours, r.extra_in_ours]).toEqual([[], []]);
      expect(r.max_rel_err).toBeLessThan(1e-6);
    }
  });

  it("split pieces with different downs still join block-diagonally (rank = the sum), exactly", async () => {
    const dir = await tempDir();
    const src = join(dir, "d.safetensors");
    await buildLora({ path: src, arch: "flux1", format: "diffusers", pick: (m) => m.native === "double_blocks.0.img_attn.qkv", rank: 2, metadata: { ss_network_dim: "2" } });
    await convert(src, join(dir, "k.safetensors"), "kohya");
    expect((await shapes(join(dir, "k.safetensors"))).get("lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight")).toEqual([6, 3072]);
    const k = await openSafetensors({ path: join(dir, "k.safetensors") });
    expect(k.metadata.ss_network_dim).toBe("6"); // the one rank every module now has (plan-metadata.ts)
    await k.close();
  });

  it("a fused module zero everywhere (an untrained LoRA) keeps every part when split", async () => {
    const dir = await tempDir();
    const src = join(dir, "k.safetensors");
    const stem = "lora_unet_double_blocks_0_img_attn_qkv";
    await writeSafetensors({
      path: src,
      tensors: [
        { name: `${stem}.lora_down.weight`, dtype: "F32", shape: [2, 3072], data: encodeFromF32("F32", randomF32(2 * 3072, rng(3), 0.05)) },
        { name: `${stem}.lora_up.weight`, dtype: "F32", shape: [9216, 2], data: new Uint8Array(9216 * 2 * 4) },
      ],
    });
    await convert(src, join(dir, "d.safetensors"), "diffusers");
    const names = [...(await shapes(join(dir, "d.safetensors"))).keys()].filter((k) => k.endsWith("lora_B.weight")).sort();
    expect(names).toEqual(["transformer.transformer_blocks.0.attn.to_k.lora_B.weight", "transformer.transformer_blocks.0.attn.to_q.lora_B.weight", "transformer.transformer_blocks.0.attn.to_v.lora_B.weight"]);
  });
});
