import { describe, expect, it } from "vitest";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { VRAM_ALL_LINEAR_EXTRA, VRAM_PEER_ALL_LINEAR } from "@loraspec/core/knowledge/vram.js";
import { resolveTrainSettings } from "@loraspec/core/plan/train-settings.js";
import { estimateVramWith } from "@loraspec/core/plan/vram-model.js";
import { allLinearBytesPerTokenHiddenBlock, peerAllLinearBytesPerTokenHiddenBlock } from "@loraspec/core/plan/vram-extras.js";
import { contract } from "../lint/helpers.js";

type Base = "flux1-dev" | "flux2-klein-4b" | "sdxl" | "qwen-image";
/** The plan's estimate for a trainer, base, precision, checkpointing and network section (1024², batch 1). */
function est(trainer: "diffusers" | "kohya" | "ai-toolkit", base: Base, quantize: "none" | "fp8" | "int8", ckpt: boolean, network: Record<string, unknown> = {}) {
  const c = contract({ base: { model: base, quantize }, trainer: { name: trainer, version: undefined }, network, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250, gradient_checkpointing: ckpt, cache_latents: true, cache_text_encoder_outputs: true } });
  return estimateVramWith(c, getBaseModel(base)!, 1024, resolveTrainSettings(c, { resolution: 1024 }));
}
const acts = (e: ReturnType<typeof est>) => e.parts.activations;
const said = (e: ReturnType<typeof est>) => e.assumptions.join(" ");

describe("the all-linear activation extra (knowledge/vram.ts VRAM_ALL_LINEAR_EXTRA, VRAM_PEER_ALL_LINEAR)", () => {
  it("is each family's own measurement: SDXL 6.9, FLUX.1 23.1 and klein 14.4 B per token x hidden x block", () => {
    expect(allLinearBytesPerTokenHiddenBlock(VRAM_ALL_LINEAR_EXTRA.sdxl!)).toBeCloseTo(6.9, 1);
    expect(allLinearBytesPerTokenHiddenBlock(VRAM_ALL_LINEAR_EXTRA.flux1!)).toBeCloseTo(23.1, 1);
    expect(allLinearBytesPerTokenHiddenBlock(VRAM_ALL_LINEAR_EXTRA.flux2!)).toBeCloseTo(14.4, 1);
  });

  it("Kohya's own, from its measured peaks over the built-in trainer's eager attention rows: SDXL 3.1, FLUX.1 17.6 B", () => {
    expect(peerAllLinearBytesPerTokenHiddenBlock("kohya", VRAM_PEER_ALL_LINEAR.kohya!.sdxl!)).toBeCloseTo(3.1, 1);
    expect(peerAllLinearBytesPerTokenHiddenBlock("kohya", VRAM_PEER_ALL_LINEAR.kohya!.flux1!)).toBeCloseTo(17.6, 1);
  });

  it.each(["ai-toolkit", "diffusers"] as const)("%s: every linear without checkpointing adds the built-in trainer's; the attention preset and checkpointing add none", (trainer) => {
    const all = est(trainer, "flux1-dev", "none", false, trainer === "diffusers" ? { targets: "all-linear" } : {});
    const att = est(trainer, "flux1-dev", "none", false, { targets: "attention" });
    // The built-in trainer computes its LoRA in bf16 here: every linear also saves more fp32 input copies than attention does.
    expect(acts(all) - acts(att)).toBeGreaterThan(trainer === "diffusers" ? 10 : 18);
    expect(said(all)).toMatch(/all-linear: \+18\.\d GB activations/);
    expect(acts(est(trainer, "flux1-dev", "none", true, { targets: "all-linear" }))).toBe(acts(est(trainer, "flux1-dev", "none", true, { targets: "attention" })));
  });

  it("Kohya: its own measured extra, with no published-figures allowance on top; the allowance stays on attention and with checkpointing", () => {
    const all = est("kohya", "flux1-dev", "none", false);
    const att = est("kohya", "flux1-dev", "none", false, { targets: "attention" });
    expect(acts(all) - acts(att)).toBeCloseTo(14.2, 0);
    expect(said(all)).toMatch(/kohya's own peak on FLUX\.1 \[dev\], 63\.3 GiB/);
    expect(said(all)).not.toMatch(/\+2\.5 GB over/);
    expect(said(att)).toMatch(/kohya: \+2\.5 GB over/);
    expect(said(est("kohya", "flux1-dev", "none", true))).toMatch(/kohya: \+2\.5 GB over/);
    expect(said(est("kohya", "sdxl", "none", false))).toMatch(/kohya's own peak on .*13\.6 GiB/);
  });

  it("an unmeasured family takes FLUX.1's figure (said so); SDXL its own", () => {
    expect(said(est("kohya", "qwen-image", "none", false))).toMatch(/taken for this family/);
    const sdxl = est("ai-toolkit", "sdxl", "none", false);
    expect(said(sdxl)).toMatch(/Stable Diffusion XL 1\.0's all-linear peak 14\.88 GiB/);
    expect(acts(sdxl) - acts(est("ai-toolkit", "sdxl", "none", false, { targets: "attention" }))).toBeCloseTo(2.5, 0);
  });
});

describe("ai-toolkit's quantised base keeps its linears' inputs (knowledge/vram.ts VRAM_QUANTIZED_BASE_KEPT)", () => {
  it("without checkpointing fp8 and int8 add ~9.6 GB of activations on FLUX.1; with checkpointing none, said so", () => {
    const fp8 = est("ai-toolkit", "flux1-dev", "fp8", false);
    expect(acts(fp8) - acts(est("ai-toolkit", "flux1-dev", "none", false))).toBeCloseTo(9.6, 0);
    expect(acts(est("ai-toolkit", "flux1-dev", "int8", false))).toBe(acts(fp8));
    const ckpt = est("ai-toolkit", "flux1-dev", "fp8", true);
    expect(acts(ckpt)).toBe(acts(est("ai-toolkit", "flux1-dev", "none", true)));
    expect(said(ckpt)).toMatch(/recomputed/);
  });

  it("the 24 GB FLUX.1 recipe (qfloat8 + checkpointing) still fits 24 GB", () => {
    expect(est("ai-toolkit", "flux1-dev", "fp8", true).totalGb).toBeLessThanOrEqual(24);
  });

  it("Kohya's fp8 base and the built-in trainer have no such record; SDXL none, said so", () => {
    expect(said(est("kohya", "flux1-dev", "fp8", false))).not.toMatch(/quantised linears/);
    expect(said(est("diffusers", "flux1-dev", "fp8", false))).not.toMatch(/quantised linears/);
    const sdxl = est("ai-toolkit", "sdxl", "fp8", false);
    expect(said(sdxl)).toMatch(/not measured on SDXL/);
  });
});
