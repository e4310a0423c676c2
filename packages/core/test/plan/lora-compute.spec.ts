import { afterEach, describe, expect, it } from "vitest";
import { BUILTIN_TRAINER, builtinArchOf } from "@loraspec/core/knowledge/builtin-trainer.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { LORA_COMPUTE } from "@loraspec/core/knowledge/lora-compute.js";
import { loraBf16SavingBytes } from "@loraspec/core/plan/vram-extras.js";
import { resolveBuiltinSettings } from "@loraspec/core/compile/diffusers.js";
import { resolveTrainSettings } from "@loraspec/core/plan/train-settings.js";
import { contract } from "../lint/helpers.js";

/** The built-in trainer's LoRA compute dtype (plan/lora-compute.ts): bf16 only where a GPU measured it. */
const contractOf = (model: string, over: Record<string, unknown> = {}, trainer = "diffusers") =>
  contract({
    trainer: { name: trainer, version: trainer === "diffusers" ? undefined : "v0.10.1" },
    base: { model, quantize: "none" },
    hardware: { kind: "local", gpu: "H200", vram_gb: 141 },
    limits: { vram_ceiling_gb: undefined, max_cost_usd: undefined },
    hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250, optimizer: "adamw", ...((over.hyperparameters as object) ?? {}) },
    ...(over.network ? { network: over.network } : {}),
  } as never);
const settings = (model: string, over: Record<string, unknown> = {}, trainer = "diffusers") => resolveTrainSettings(contractOf(model, over, trainer), { steps: 2000 });
const choice = (s: ReturnType<typeof settings>) => s.choices.find((c) => c.setting === "lora_compute");
const measured = LORA_COMPUTE.measuredArches as Record<string, string>;
const committed = { ...measured };

describe("the plan's lora_compute", () => {
  afterEach(() => {
    for (const k of Object.keys(measured)) delete measured[k];
    Object.assign(measured, committed);
  });

  it("the committed record: SDXL (lease of 2026-12-03), FLUX.1 and FLUX.2 [klein] (2026-12-04) measured on a GPU", () => {
    expect(Object.keys(committed).sort()).toEqual(["flux1", "flux2-klein", "sdxl"]);
    expect(committed.sdxl).toMatch(/0\.083 -> 0\.078/);
    expect(committed.flux1).toMatch(/0\.396 -> 0\.383/);
    expect(committed["flux2-klein"]).toMatch(/0\.178 -> 0\.170/);
    for (const model of ["sdxl", "flux1-dev", "flux2-klein-4b", "flux2-klein-9b"]) expect(settings(model).loraCompute, model).toBe("bf16");
    expect(settings("flux2-dev").loraCompute).toBe("fp32");
  });

  it("every base of a measured arch has its activation saving (derived from its module map)", () => {
    const bases = (Object.keys(BUILTIN_TRAINER.bases) as (keyof typeof BUILTIN_TRAINER.bases)[]).filter((id) => committed[builtinArchOf(id).arch]);
    expect(bases).toEqual(expect.arrayContaining(["sdxl", "flux1-dev", "flux1-schnell", "flux2-klein-4b", "flux2-klein-9b"]));
    for (const id of bases) expect(loraBf16SavingBytes(getBaseModel(id)!, builtinArchOf(id).record.targets, false)?.bytes, id).toBeGreaterThan(0);
  });

  it.each(["sdxl", "flux1-dev", "flux2-klein-4b"])("%s: fp32 until a GPU measures bf16, and says so", (model) => {
    for (const k of Object.keys(measured)) delete measured[k];
    const s = settings(model);
    expect(s.loraCompute).toBe("fp32");
    expect(choice(s)?.why).toMatch(/^fp32 \(peft's path.*not measured on a GPU yet for /);
    expect(choice(s)?.source).toContain("bench/gpu-speed.py");
  });

  it("bf16 where measured: the request carries it", () => {
    for (const k of Object.keys(measured)) delete measured[k];
    measured.sdxl = "SDXL graph + compile 0.083 -> 0.07 s/step (example)";
    const s = settings("sdxl");
    expect(s.loraCompute).toBe("bf16");
    expect(choice(s)?.why).toMatch(/^bf16: the LoRA path computes in the base's bf16 over fp32 master weights \(SDXL graph/);
    expect(settings("flux1-dev").loraCompute).toBe("fp32");
    expect(resolveBuiltinSettings(contractOf("sdxl"), { steps: 2000, learningRate: 1e-4, resolution: 1024 }).settings.lora_compute).toBe("bf16");
  });

  it("fp32 over a non-bf16 base and for DoRA/LoKr/LoHa, even where measured", () => {
    measured.sdxl = "measured";
    const fp16 = settings("sdxl", { hyperparameters: { precision: "fp16" } });
    expect(fp16.loraCompute).toBe("fp32");
    expect(choice(fp16)?.why).toMatch(/the base runs in fp16/);
    const dora = settings("sdxl", { network: { type: "dora" } });
    expect(dora.loraCompute).toBe("fp32");
    expect(choice(dora)?.why).toMatch(/^fp32: dora keeps the LoRA path in fp32/);
  });

  it("other trainers: fp32 (the built-in trainer's setting only)", () => {
    expect(settings("sdxl", {}, "kohya").loraCompute).toBe("fp32");
  });

  it("the record is sourced", () => {
    expect(LORA_COMPUTE.source).toMatch(/peft 0\.21\.2/);
    expect(LORA_COMPUTE.asOf).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });
});
