import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { encodeFromF32 } from "@loraspec/core/lora/dtype.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { inspectLora } from "@loraspec/engine/lora/inspect-lora.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { buildLora, fluxSubset, HAS_PYTHON, oracle, tempDir } from "./helpers.js";

// kohya alpha varies per module: scale 0.25, 2, 1 and "no alpha" (= rank), with rank 4 or 8.
const kohyaAlpha = (m: { native: string }, rank: number, i: number) => (/final_layer/.test(m.native) ? rank : [1, 2 * rank, rank, undefined][i % 4]);

async function convert(input: string, output: string, to: "diffusers" | "kohya" | "comfy", allowDrop = false) {
  const events = await collectEvents(convertLora({ input, output, to, allowDrop }));
  return events;
}

describe("inspect", () => {
  it("detects a kohya FLUX.1 LoRA, its modules, ranks, scales and trigger words", async () => {
    const dir = await tempDir();
    const p = join(dir, "k.safetensors");
    await buildLora({
      path: p, arch: "flux1", format: "kohya", pick: fluxSubset, rank: 4, alpha: kohyaAlpha, dtype: "BF16",
      metadata: { ss_network_dim: "4", ss_tag_frequency: JSON.stringify({ "10_txcl": { txcl: 20, "a photo": 3 } }), ss_dataset_dirs: JSON.stringify({ "10_txcl": { n_repeats: 10, img_count: 20 } }), "modelspec.architecture": "flux-1-dev/lora" },
      extra: [{ name: "lora_unet_double_blocks_0_img_attn_norm_query_norm.diff", dtype: "F32", shape: [2], data: encodeFromF32("F32", new Float32Array([NaN, 1])) }],
    });
    const r = await inspectLora({ path: p });
    expect(r.format).toBe("lycoris"); // a .diff key makes it not a plain LoRA
    expect(r.architecture?.id).toBe("flux1");
    expect(r.triggerWords).toEqual(["txcl"]); // "a photo" is in 3 of 20 captions: a frequent tag, not a trigger
    expect(r.nonFinite).toEqual([{ tensor: "lora_unet_double_blocks_0_img_attn_norm_query_norm.diff", nan: 1, inf: 0 }]);
    expect(r.unplaced).toEqual(["lora_unet_double_blocks_0_img_attn_norm_query_norm.diff"]);
    expect(r.components.sort()).toEqual(["te1", "transformer"]);
    const qkv = r.modules.find((m) => m.native === "double_blocks.0.img_attn.qkv")!;
    expect(qkv).toMatchObject({ rank: 4, key: "lora_unet_double_blocks_0_img_attn_qkv" });
    const cov = r.coverage!.find((c) => c.component === "transformer")!;
    expect(cov.touched).toBe(2 * 10 + 2 * 3 + 10);
  });

  const formats: Array<[string, "kohya" | "diffusers" | "ai-toolkit-flux2", Parameters<typeof buildLora>[0]["arch"], string, string]> = [
    ["kohya SDXL", "kohya", "sdxl", "kohya", "sdxl"],
    ["diffusers SDXL", "diffusers", "sdxl", "diffusers", "sdxl"],
    ["diffusers FLUX.1", "diffusers", "flux1", "diffusers", "flux1"],
    ["kohya FLUX.2 klein 4B", "kohya", "flux2-klein-4b", "kohya", "flux2-klein-4b"],
    ["ai-toolkit FLUX.2 klein 9B", "ai-toolkit-flux2", "flux2-klein-9b", "ai-toolkit", "flux2-klein-9b"],
    ["kohya Qwen-Image", "kohya", "qwen-image", "kohya", "qwen-image"],
    ["ai-toolkit Z-Image", "ai-toolkit-flux2", "zimage", "ai-toolkit", "zimage"],
  ];
  it.each(formats)("detects %s", async (_n, fmt, arch, wantFormat, wantArch) => {
    const dir = await tempDir();
    const p = join(dir, "x.safetensors");
    await buildLora({ path: p, arch, format: fmt, pick: (m) => /(^|\.)(0|1)\./.test(m.native) && m.defaultTarget && m.shape.length === 2, rank: 1 });
    const r = await inspectLora({ path: p });
    expect([r.format, r.architecture?.id, r.unplaced]).toEqual([wantFormat, wantArch, []]);
  });
});

describe.runIf(HAS_PYTHON)("convert matches diffusers' own conversion (oracle)", () => {
  it("FLUX.1 kohya -> diffusers: per-module delta W equal within 1e-6, dense and split_qkv-sparse fused modules", async () => {
    const dir = await tempDir();
    const src = join(dir, "kohya.safetensors");
    const out = join(dir, "diffusers.safetensors");
    await buildLora({
      path: src, arch: "flux1", format: "kohya", pick: (m) => fluxSubset(m) && m.component === "transformer",
      rank: (m, i) => (i % 2 ? 4 : 6), alpha: kohyaAlpha, sparse: (m) => m.native === "double_blocks.18.img_attn.qkv" || m.native === "single_blocks.37.linear1",
    });
    const events = await convert(src, out, "diffusers");
    expect(events.some((e) => e.type === "warning" && e.code === "W_LORA_SPLIT_QKV")).toBe(true);
    const r = oracle("convert_oracle.py", ["flux1", src, out]);
    expect(r.missing_in_ours).toEqual([]);
    expect(r.extra_in_ours).toEqual([]);
    expect(r.modules).toBe(2 * 14 + 2 * 6 + 10);
    expect(r.max_rel_err).toBeLessThan(1e-6);
    // Sparse modules were split by rank (rank 6/3 = 2 per projection), dense ones keep the full rank.
    const f = await openSafetensors({ path: out });
    const k = await openSafetensors({ path: src });
    const rankOf = (file: typeof f, key: string) => file.tensor(key).shape[0]!;
    expect(rankOf(f, "transformer.transformer_blocks.18.attn.to_q.lora_A.weight") * 3).toBe(rankOf(k, "lora_unet_double_blocks_18_img_attn_qkv.lora_down.weight"));
    expect(rankOf(f, "transformer.transformer_blocks.0.attn.to_q.lora_A.weight")).toBe(rankOf(k, "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"));
    await f.close();
    await k.close();
  });

  it("FLUX.1 round trip kohya -> diffusers -> kohya and -> comfy preserves every delta", async () => {
    const dir = await tempDir();
    const src = join(dir, "kohya.safetensors");
    await buildLora({ path: src, arch: "flux1", format: "kohya", pick: fluxSubset, rank: 4, alpha: kohyaAlpha, metadata: { ss_network_dim: "4", sshs_model_hash: "x", sshs_legacy_hash: "y" } });
    await convert(src, join(dir, "d.safetensors"), "diffusers");
    await convert(join(dir, "d.safetensors"), join(dir, "k.safetensors"), "kohya");
    await convert(src, join(dir, "c.safetensors"), "comfy");
    await convert(join(dir, "c.safetensors"), join(dir, "k2.safetensors"), "kohya");
    for (const back of ["k.safetensors", "k2.safetensors"]) {
      const r = oracle("convert_oracle.py", ["same", src, join(dir, back)]);
      expect([back, r.missing_in_ours, r.extra_in_ours]).toEqual([back, [], []]);
      expect(r.max_rel_err).toBeLessThan(1e-6);
    }
    // Hashes are recomputed, metadata carried over; ss_network_dim only while true: the diffusers file's
    // q/k/v are rank 4 like the rest, and the kohya file joins them back with their one shared down
    // (fused-layout.ts findSharedDown), rank 4 again, so it stays (a rank-12 join would remove it).
    const d = await openSafetensors({ path: join(dir, "d.safetensors") });
    expect(d.metadata.ss_network_dim).toBe("4");
    await d.close();
    const k = await openSafetensors({ path: join(dir, "k.safetensors") });
    expect(k.metadata.ss_network_dim).toBe("4");
    expect((await openSafetensors({ path: join(dir, "k2.safetensors") }).then(async (f) => [f.metadata.ss_network_dim, await f.close()]))[0]).toBe("4");
    expect(k.metadata.sshs_model_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(k.metadata.sshs_legacy_hash).toMatch(/^[0-9a-f]{8}$/);
    await k.close();
  });

  it("SDXL kohya (sgm names, conv and text encoders) -> diffusers matches diffusers' conversion", async () => {
    const dir = await tempDir();
    const src = join(dir, "kohya.safetensors");
    const out = join(dir, "diffusers.safetensors");
    const pick = (m: { native: string; component: string }) =>
      /^(input_blocks\.(1|4|7)\.|middle_block\.|output_blocks\.(0|2|5|8)\.)/.test(m.native) && !/transformer_blocks\.[1-9]/.test(m.native) ||
      /text_model\.encoder\.layers\.0\./.test(m.native);
    await buildLora({ path: src, arch: "sdxl", format: "kohya", pick, rank: (m, i) => 2 + (i % 3), alpha: (m, r, i) => [1, r, 2 * r][i % 3] });
    await convert(src, out, "diffusers");
    const r = oracle("convert_oracle.py", ["sdxl", src, out]);
    expect(r.missing_in_ours).toEqual([]);
    expect(r.extra_in_ours).toEqual([]);
    expect(r.modules).toBeGreaterThan(50);
    expect(r.max_rel_err).toBeLessThan(1e-6);
    await convert(out, join(dir, "back.safetensors"), "kohya");
    const rt = oracle("convert_oracle.py", ["same", src, join(dir, "back.safetensors")]);
    expect([rt.missing_in_ours, rt.extra_in_ours]).toEqual([[], []]);
    expect(rt.max_rel_err).toBeLessThan(1e-6);
  });
});

describe.runIf(HAS_PYTHON)("diffusers lora_adapter_metadata", () => {
  it("applies lora_alpha / r from the file's LoraConfig metadata and does not apply it twice after conversion", async () => {
    const dir = await tempDir();
    const src = join(dir, "d.safetensors");
    const pick = (m: { native: string }) => /^input_blocks\.4\.1\.transformer_blocks\.0\.attn1\./.test(m.native);
    await buildLora({ path: src, arch: "sdxl", format: "diffusers", pick, rank: 4, metadata: { format: "pt", lora_adapter_metadata: JSON.stringify({ "unet.lora_alpha": 8, "unet.r": 4 }) } });
    const report = await inspectLora({ path: src });
    expect(report.scales).toEqual({ "2": 4 });
    await convert(src, join(dir, "k.safetensors"), "kohya");
    await convert(join(dir, "k.safetensors"), join(dir, "d2.safetensors"), "diffusers");
    const d2 = await openSafetensors({ path: join(dir, "d2.safetensors") });
    expect(d2.metadata.lora_adapter_metadata).toBeUndefined();
    await d2.close();
    const r = oracle("convert_oracle.py", ["weighted", `${src}:2`, join(dir, "d2.safetensors")]);
    expect([r.missing_in_ours, r.extra_in_ours, r.modules]).toEqual([[], [], 4]);
    expect(r.max_rel_err).toBeLessThan(1e-6);
  });
});

describe("every key accounted for", () => {
  it("a key that cannot be placed fails with E_LORA_UNUSED_KEYS, or is dropped and reported with allowDrop", async () => {
    const dir = await tempDir();
    const src = join(dir, "k.safetensors");
    const stray = "lora_unet_double_blocks_0_img_attn_nonsense.lora_down.weight";
    await buildLora({
      path: src, arch: "flux1", format: "kohya", pick: (m) => m.native.startsWith("double_blocks.0.img"), rank: 2,
      extra: [{ name: stray, dtype: "F32", shape: [2, 3072], data: new Uint8Array(2 * 3072 * 4) }],
    });
    const failed = await convert(src, join(dir, "o.safetensors"), "diffusers").catch((e) => e);
    expect(failed.code).toBe("E_LORA_UNUSED_KEYS");
    expect(failed.details.keys).toEqual([stray]);
    const events = await convert(src, join(dir, "o.safetensors"), "diffusers", true);
    const done = events.at(-1)!;
    expect(done.type === "done" && done.result?.dropped).toEqual([stray]);
  });

  it("T5 keys cannot go to the diffusers FLUX format: listed, not silently dropped", async () => {
    const dir = await tempDir();
    const src = join(dir, "k.safetensors");
    await buildLora({ path: src, arch: "flux1", format: "kohya", pick: (m) => m.native === "encoder.block.0.layer.0.SelfAttention.q" || m.native === "img_in", rank: 2 });
    const failed = await convert(src, join(dir, "o.safetensors"), "diffusers").catch((e) => e);
    expect(failed.details.keys).toEqual(["lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight", "lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_up.weight"]);
  });
});

describe.runIf(HAS_PYTHON)("more architectures and formats", () => {
  it("FLUX.2 klein 4B kohya -> diffusers matches diffusers' _convert_kohya_flux2_lora_to_diffusers", async () => {
    const dir = await tempDir();
    const src = join(dir, "k.safetensors"), out = join(dir, "d.safetensors");
    await buildLora({ path: src, arch: "flux2-klein-4b", format: "kohya", pick: (m) => /^(double_blocks\.0\.|single_blocks\.0\.)/.test(m.native) || !/blocks/.test(m.native), rank: 4, alpha: kohyaAlpha });
    await convert(src, out, "diffusers");
    const r = oracle("convert_oracle.py", ["flux2", src, out]);
    // diffusers' kohya FLUX.2 converter drops these with only a warning ("Unsupported keys for Kohya
    // Flux2 LoRA conversion"); we place them (names checked against diffusers' transformer_flux2.py).
    expect(r.missing_in_ours).toEqual([]);
    expect(r.extra_in_ours).toEqual([
      "double_stream_modulation_img.linear",
      "double_stream_modulation_txt.linear",
      "norm_out.linear",
      "single_stream_modulation.linear",
      "time_guidance_embed.guidance_embedder.linear_1",
      "time_guidance_embed.guidance_embedder.linear_2",
    ]);
    expect(r.modules).toBeGreaterThan(15);
    expect(r.max_rel_err).toBeLessThan(1e-6);
  });

  it("XLabs FLUX.1 -> diffusers matches diffusers' _convert_xlabs_flux_lora_to_diffusers (single qkv covers 3 x 3072 rows of linear1)", async () => {
    const dir = await tempDir();
    const src = join(dir, "x.safetensors"), out = join(dir, "d.safetensors");
    const { encodeFromF32: enc } = await import("@loraspec/core/lora/dtype.js");
    const { writeSafetensors } = await import("@loraspec/engine/lora/write-safetensors.js");
    const { randomF32, rng } = await import("./helpers.js");
    const next = rng(9);
    const r = 4, h = 3072;
    const t = (name: string, shape: number[]) => ({ name, dtype: "F32" as const, shape, data: enc("F32", randomF32(shape[0]! * shape[1]!, next, 0.05)) });
    await writeSafetensors({
      path: src,
      tensors: [
        t("double_blocks.0.processor.qkv_lora1.down.weight", [r, h]), t("double_blocks.0.processor.qkv_lora1.up.weight", [3 * h, r]),
        t("double_blocks.0.processor.qkv_lora2.down.weight", [r, h]), t("double_blocks.0.processor.qkv_lora2.up.weight", [3 * h, r]),
        t("double_blocks.0.processor.proj_lora1.down.weight", [r, h]), t("double_blocks.0.processor.proj_lora1.up.weight", [h, r]),
        t("double_blocks.0.processor.proj_lora2.down.weight", [r, h]), t("double_blocks.0.processor.proj_lora2.up.weight", [h, r]),
        t("single_blocks.1.processor.qkv_lora.down.weight", [r, h]), t("single_blocks.1.processor.qkv_lora.up.weight", [3 * h, r]),
        t("single_blocks.1.processor.proj_lora.down.weight", [r, 5 * h]), t("single_blocks.1.processor.proj_lora.up.weight", [h, r]),
      ],
    });
    const report = await inspectLora({ path: src });
    expect([report.format, report.architecture?.id, report.unplaced]).toEqual(["xlabs", "flux1", []]);
    await convert(src, out, "diffusers");
    const o = oracle("convert_oracle.py", ["xlabs", src, out]);
    expect([o.missing_in_ours, o.extra_in_ours]).toEqual([[], []]);
    expect(o.modules).toBe(3 + 1 + 3 + 1 + 3 + 1);
    expect(o.max_rel_err).toBeLessThan(1e-6);
  });

  const archs: Array<[Parameters<typeof buildLora>[0]["arch"], (m: { native: string }) => boolean]> = [
    ["flux2-klein-4b", (m) => /^(double_blocks\.1\.|single_blocks\.1\.|final_layer)/.test(m.native)],
    ["flux2-dev", (m) => /^(double_blocks\.0\.img_attn|single_blocks\.0\.linear2)/.test(m.native)],
    ["qwen-image", (m) => /^transformer_blocks\.0\./.test(m.native)],
    ["zimage", (m) => /^(layers\.0\.|noise_refiner\.0\.attention)/.test(m.native)],
  ];
  it.each(archs)("%s round trip kohya -> diffusers -> comfy -> kohya preserves every delta", async (arch, pick) => {
    const dir = await tempDir();
    const src = join(dir, "k.safetensors");
    await buildLora({ path: src, arch, format: "kohya", pick, rank: 4, alpha: kohyaAlpha });
    await convert(src, join(dir, "d.safetensors"), "diffusers");
    await convert(join(dir, "d.safetensors"), join(dir, "c.safetensors"), "comfy");
    await convert(join(dir, "c.safetensors"), join(dir, "k2.safetensors"), "kohya");
    const r = oracle("convert_oracle.py", ["same", src, join(dir, "k2.safetensors")]);
    expect([r.missing_in_ours, r.extra_in_ours]).toEqual([[], []]);
    expect(r.max_rel_err).toBeLessThan(1e-6);
  });
});

describe("detection of non-plain and other formats", () => {
  const z = (name: string, shape: number[]) => ({ name, dtype: "F32" as const, shape, data: new Uint8Array(shape.reduce((a, b) => a * b, 1) * 4) });
  const cases: Array<[string, ReturnType<typeof z>[], string, string[]]> = [
    ["LoHa", [z("lora_unet_double_blocks_0_img_attn_proj.hada_w1_a", [3072, 4]), z("lora_unet_double_blocks_0_img_attn_proj.hada_w1_b", [4, 3072]), z("lora_unet_double_blocks_0_img_attn_proj.alpha", [])], "lycoris", ["lycoris:loha"]],
    ["LoKr", [z("lycoris_transformer_blocks_0_attn_to_q.lokr_w1", [8, 8]), z("lycoris_transformer_blocks_0_attn_to_q.lokr_w2", [384, 384])], "lycoris", ["lycoris:lokr"]],
    ["DoRA", [z("lora_unet_img_in.lora_down.weight", [2, 64]), z("lora_unet_img_in.lora_up.weight", [3072, 2]), z("lora_unet_img_in.dora_scale", [1, 64])], "kohya", ["dora"]],
    ["LoCon Tucker", [z("lora_unet_img_in.lora_down.weight", [2, 64]), z("lora_unet_img_in.lora_up.weight", [3072, 2]), z("lora_unet_img_in.lora_mid.weight", [2, 2])], "kohya", ["lycoris:locon-tucker"]],
    ["raw PEFT", [z("base_model.model.x_embedder.lora_A.weight", [2, 64]), z("base_model.model.x_embedder.lora_B.weight", [3072, 2])], "peft", []],
    ["PEFT with adapter name", [z("x_embedder.lora_A.default.weight", [2, 64]), z("x_embedder.lora_B.default.weight", [3072, 2])], "peft", []],
    ["kohya SDXL with diffusers block names", [z("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight", [2, 640]), z("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight", [640, 2])], "kohya", []],
    ["ComfyUI (diffusion_model. + lora_up/down)", [z("diffusion_model.img_in.lora_down.weight", [2, 64]), z("diffusion_model.img_in.lora_up.weight", [3072, 2])], "comfy", []],
  ];
  it.each(cases)("%s", async (_name, tensors, format, traits) => {
    const dir = await tempDir();
    const p = join(dir, "x.safetensors");
    const { writeSafetensors } = await import("@loraspec/engine/lora/write-safetensors.js");
    await writeSafetensors({ path: p, tensors });
    const r = await inspectLora({ path: p });
    expect(r.format).toBe(format);
    expect(r.traits).toEqual(traits);
    // Non-LoRA parameters are never placed: convert refuses them with a list.
    if (traits.length) expect(r.unplaced.length).toBeGreaterThan(0);
    else expect(r.unplaced).toEqual([]);
  });
});
