import { describe, expect, it } from "vitest";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { VRAM_ALL_LINEAR_EXTRA } from "@loraspec/core/knowledge/vram.js";
import { resolveTrainSettings } from "@loraspec/core/plan/train-settings.js";
import { estimateVramWith } from "@loraspec/core/plan/vram-model.js";
import { allLinearBytesPerTokenHiddenBlock } from "@loraspec/core/plan/vram-extras.js";
import { contract } from "../lint/helpers.js";

type Base = "flux1-dev" | "flux2-klein-4b" | "sdxl" | "qwen-image";
/** The plan's estimate for a trainer, base, precision, checkpointing and network section (1024², batch 1). */
function est(trainer: "diffusers" | "kohya" | "ai-toolkit", base: Base, quantize: "none" | "fp8" | "int8", ckpt: boolean, network: Record<string, unknown> = {}) {
  const c = contract({ base: { model: base, quantize }, trainer: { name: trainer, version: undefined }, network, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250, gradient_checkpointing: ckpt, cache_latents: true, cache_text_encoder_outputs: true } });
  return estimateVramWith(c, getBaseModel(base)!, 1024, resolveTrainSettings(c, { resolution: 1024 }));
}
const acts = (e: ReturnType<typeof est>) => e.parts.activations;
const said = (e: ReturnType<typeof est>) => e.assumptions.join(" ");

describe("the all-linear activation extra (knowledge/vram.ts VRAM_ALL_LINEAR_EXTRA)", () => {
  it("is each family's own measurement: FLUX.1 23.1 and klein 14.4 B per token x hidden x block", () => {
    expect(allLinearBytesPerTokenHiddenBlock(VRAM_ALL_LINEAR_EXTRA.flux1!)).toBeCloseTo(23.1, 1);
    expect(allLinearBytesPerTokenHiddenBlock(VRAM_ALL_LINEAR_EXTRA.flux2!)).toBeCloseTo(14.4, 1);
  });

  it.each(["kohya", "ai-toolkit", "diffusers"] as const)("%s: every linear without checkpointing adds it; the attention preset and checkpointing add none", (trainer) => {
    const all = est(trainer, "flux1-dev", "none", false, trainer === "diffusers" ? { targets: "all-linear" } : {});
    const att = est(trainer, "flux1-dev", "none", false, { targets: "attention" });
    expect(acts(all) - acts(att)).toBeGreaterThan(18);
    expect(said(all)).toMatch(/all-linear: \+18\.\d GB activations/);
    expect(acts(est(trainer, "flux1-dev", "none", true, { targets: "all-linear" }))).toBe(acts(est(trainer, "flux1-dev", "none", true, { targets: "attention" })));
  });

  it("an unmeasured family takes FLUX.1's figure (said so); SDXL none (said so)", () => {
    expect(said(est("kohya", "qwen-image", "none", false))).toMatch(/taken for this family/);
    const sdxl = est("kohya", "sdxl", "none", false);
    expect(said(sdxl)).toMatch(/SDXL's extra activation memory is not measured/);
    expect(acts(sdxl)).toBe(acts(est("kohya", "sdxl", "none", false, { targets: "attention" })));
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
