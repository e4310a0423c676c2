import { describe, expect, it } from "vitest";
import { ContractSchema } from "@loraspec/core/contract/schema.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { builtinArchOf } from "@loraspec/core/knowledge/builtin-trainer.js";
import { LORA_COMPUTE } from "@loraspec/core/knowledge/lora-compute.js";
import { LORA_TARGETS, type TargetArch } from "@loraspec/core/knowledge/lora-targets.js";
import { estimateVramWith } from "@loraspec/core/plan/vram-model.js";
import { loraBf16SavingBytes } from "@loraspec/core/plan/vram-extras.js";

const GIB = 2 ** 30;
const patterns = (base: string, targets: "attention" | "attention-mlp" | "all-linear") => LORA_TARGETS[builtinArchOf(base as never).arch as TargetArch].presets[targets];
const savingGib = (base: string, targets: "attention" | "attention-mlp" | "all-linear", compiled: boolean) => loraBf16SavingBytes(getBaseModel(base as never)!, patterns(base, targets), compiled)!.bytes / GIB;

/** The bf16 LoRA path's activation saving, derived per adapted layer input (plan/vram-extras.ts), against every measured pair. */
describe("the bf16 LoRA saving, derived from the adapted layers' inputs (knowledge/lora-compute.ts inputCopies)", () => {
  it.each(LORA_COMPUTE.measuredPairs.map((p) => [`${p.base} ${p.targets} ${p.config}`, p] as const))("%s: the bf16 peak within 2%, the saving within 25% or 0.4 GiB", (_name, p) => {
    const derived = savingGib(p.base, p.targets, p.compiled);
    const measured = p.fp32PeakGib - p.bf16PeakGib;
    expect(Math.abs((p.fp32PeakGib - derived) / p.bf16PeakGib - 1)).toBeLessThanOrEqual(0.02);
    expect(Math.abs(derived - measured)).toBeLessThanOrEqual(Math.max(0.25 * measured, 0.4));
  });

  it("counts the adapted layers of each preset (SDXL 560 / 722, FLUX.1 266 / 494, klein 4B 60 / 100)", () => {
    const layers = (base: string, t: "attention" | "all-linear") => loraBf16SavingBytes(getBaseModel(base as never)!, patterns(base, t), false)!.layers;
    expect([layers("sdxl", "attention"), layers("sdxl", "all-linear")]).toEqual([560, 722]);
    expect([layers("flux1-dev", "attention"), layers("flux1-dev", "all-linear")]).toEqual([266, 494]);
    expect([layers("flux2-klein-4b", "attention"), layers("flux2-klein-4b", "all-linear")]).toEqual([60, 100]);
  });

  it("grows with what is adapted: attention < attention-mlp <= all-linear, and compiled below eager", () => {
    for (const base of ["sdxl", "flux1-dev", "flux2-klein-4b", "flux2-klein-9b"]) {
      for (const compiled of [false, true]) {
        expect(savingGib(base, "attention", compiled), base).toBeLessThan(savingGib(base, "attention-mlp", compiled));
        expect(savingGib(base, "attention-mlp", compiled), base).toBeLessThanOrEqual(savingGib(base, "all-linear", compiled));
      }
      expect(savingGib(base, "all-linear", true), base).toBeLessThan(savingGib(base, "all-linear", false));
    }
    // FLUX.1 compiled: the attention preset's 2.5 GiB, every linear ~10 GiB (measured 2.52 and 9.84).
    expect(savingGib("flux1-dev", "attention", true)).toBeCloseTo(2.5, 1);
    expect(savingGib("flux1-dev", "all-linear", true)).toBeCloseTo(10.0, 1);
  });

  it("a module list saves what its layers keep (one input read by q, k and v: three fp32 copies eager, one compiled)", () => {
    const model = getBaseModel("flux1-dev")!;
    const q = loraBf16SavingBytes(model, ["to_q"], false)!;
    const qkv = loraBf16SavingBytes(model, ["to_q", "to_k", "to_v"], false)!;
    expect(qkv.layers).toBe(3 * q.layers);
    expect(qkv.bytes).toBeGreaterThan(2.5 * q.bytes);
    expect(loraBf16SavingBytes(model, ["to_q", "to_k", "to_v"], true)!.bytes).toBe(loraBf16SavingBytes(model, ["to_q"], true)!.bytes);
  });

  it("the estimate takes it where the LoRA path is bf16, scaled by tokens x batch; none with checkpointing or for DoRA", () => {
    const c = (batch: number, ckpt: boolean, type = "lora") =>
      ContractSchema.parse({
        version: 1,
        name: "t",
        base: { model: "flux1-dev", quantize: "none" },
        trainer: { name: "diffusers" },
        hardware: { kind: "local", gpu: "H200" },
        target: "character",
        dataset: { path: "./d", resolution: 1024 },
        trigger: { word: "txcl" },
        network: { targets: "all-linear", type },
        hyperparameters: { rank: 16, batch_size: batch, gradient_checkpointing: ckpt, cache_latents: true, cache_text_encoder_outputs: true },
      });
    const s = { gradientCheckpointing: false, compile: true, cudaGraphs: false, quantize: "none" as const };
    const gap = (batch: number, ckpt = false, type = "lora") =>
      estimateVramWith(c(batch, ckpt, type), getBaseModel("flux1-dev")!, 1024, { ...s, gradientCheckpointing: ckpt, loraCompute: "fp32" }).parts.activations -
      estimateVramWith(c(batch, ckpt, type), getBaseModel("flux1-dev")!, 1024, { ...s, gradientCheckpointing: ckpt, loraCompute: "bf16" }).parts.activations;
    expect(gap(1)).toBeCloseTo((savingGib("flux1-dev", "all-linear", true) * GIB) / 1e9, 0);
    expect(gap(2)).toBeCloseTo(2 * gap(1), 0);
    expect(gap(1, true)).toBe(0);
    expect(gap(1, false, "dora")).toBe(0);
  });
});
