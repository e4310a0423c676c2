import { describe, expect, it } from "vitest";
import { FA4_KERNEL } from "@loraspec/core/knowledge/attention.js";
import { findGpu, GPUS } from "@loraspec/core/knowledge/gpus.js";
import { fa4RunsOn } from "@loraspec/core/plan/attention.js";
import { resolveTrainSettings } from "@loraspec/core/plan/train-settings.js";
import { lookupTrainSpeed, lookupTrainSpeedPair } from "@loraspec/core/plan/train-speed.js";
import { contract } from "../lint/helpers.js";

/** The built-in trainer's attention kernel (plan/attention.ts): FlashAttention-4 where measured faster and the card runs it. */
const settings = (model: string, gpu: string | undefined, trainer = "diffusers") =>
  resolveTrainSettings(
    contract({
      trainer: { name: trainer, version: trainer === "diffusers" ? undefined : "v0.10.1" },
      base: { model, quantize: "none" },
      hardware: { kind: "local", gpu, vram_gb: 141 },
      limits: { vram_ceiling_gb: undefined, max_cost_usd: undefined },
      hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250, optimizer: "adamw" },
    } as never),
    { steps: 2000 },
  );
const choice = (s: ReturnType<typeof settings>) => s.choices.find((c) => c.setting === "attention");

describe("the plan's attention kernel, cards x arches", () => {
  const fa4Cards = ["H200", "H100", "B200"];
  const sdpaCards = ["RTX 4090", "RTX 5090", "A100 80GB"];
  const faster = ["flux1-dev", "flux1-schnell", "flux2-klein-4b", "flux2-klein-9b"];
  it.each(fa4Cards.flatMap((gpu) => faster.map((m) => [gpu, m] as const)))("%s x %s: fa4", (gpu, model) => {
    const s = settings(model, gpu);
    expect(s.attention).toBe("fa4");
    expect(choice(s)?.why).toMatch(/^fa4: FlashAttention-4 through torch's SDPA .*pip install flash-attn-4==4\.0\.0b36 .*W_ATTENTION_FALLBACK/);
  });
  it.each(sdpaCards.flatMap((gpu) => faster.map((m) => [gpu, m] as const)))("%s x %s: sdpa (compute capability)", (gpu, model) => {
    const s = settings(model, gpu);
    expect(s.attention).toBe("sdpa");
    expect(choice(s)?.why).toMatch(new RegExp(`the ${findGpu(gpu)!.label} is compute capability \\d+\\.\\d; torch's FlashAttention-4 runs on 9\\.x and 10\\.x only`));
  });
  it.each([...fa4Cards, ...sdpaCards, undefined])("%s x sdxl: sdpa (measured slower)", (gpu) => {
    const s = settings("sdxl", gpu);
    expect(s.attention).toBe("sdpa");
    expect(choice(s)?.why).toMatch(/head dim 64 attention is slower with FA4/);
  });
  it("no card named: fa4, left to the worker to refuse where it cannot run", () => {
    const s = settings("flux1-dev", undefined);
    expect(s.attention).toBe("fa4");
    expect(choice(s)?.why).toMatch(/the worker turns it off, with a coded warning/);
  });
  it("other trainers: unchanged (torch's kernel, no attention choice)", () => {
    const s = settings("flux1-dev", "H200", "kohya");
    expect(s.attention).toBe("sdpa");
    expect(choice(s)).toBeUndefined();
  });
  it("every card's compute capability decides alike in core's record", () => {
    expect(GPUS.filter(fa4RunsOn).map((g) => g.id)).toEqual(["h100", "h200", "b200"]);
    expect(FA4_KERNEL.computeCapabilityMajors).toEqual([9, 10]);
  });
});

describe("the FA4 rows in the walltime", () => {
  const flux = { gradientCheckpointing: false, compile: true, cudaGraphs: false, quantize: "none", fp8Matmul: true } as const;
  it("uses a measured FA4 row where there is one", () => {
    expect(lookupTrainSpeed("flux1-dev", { ...flux, attention: "fa4" }, 1)).toMatchObject({ secondsPerStep: 0.306, basis: "measured" });
    expect(lookupTrainSpeed("flux1-dev", { ...flux, attention: "sdpa" }, 1)).toMatchObject({ secondsPerStep: 0.402, basis: "measured" });
  });
  it("takes torch's kernel's figure where FA4 is not measured, and says so", () => {
    const s = lookupTrainSpeed("flux1-dev", { ...flux, fp8Matmul: false, attention: "fa4" }, 1);
    expect(s).toMatchObject({ secondsPerStep: 0.44, basis: "measured" });
    expect(s?.config).toMatch(/FA4 is not measured in this configuration/);
  });
  it("compares a lever's pair under one kernel: both FA4 rows, else both torch's", () => {
    const klein = { ...flux, fp8Matmul: false, attention: "fa4" } as const;
    expect(lookupTrainSpeedPair("flux2-klein-4b", klein, { ...klein, fp8Matmul: true }, 1).map((x) => x?.secondsPerStep)).toEqual([0.169, 0.141]);
    // FLUX.1 compile without fp8 GEMMs has no FA4 row: the eager/compiled pair is torch's kernel's
    const eager = { ...klein, compile: false };
    expect(lookupTrainSpeedPair("flux1-dev", eager, klein, 1).map((x) => x?.secondsPerStep)).toEqual([0.562, 0.44]);
  });
  it("compares a lever's pair under one LoRA compute mode: both bf16 rows, else both fp32", () => {
    const sdpa = { ...flux, attention: "sdpa", loraCompute: "bf16" } as const;
    // compile + fp8 GEMMs has a bf16 row (0.383), compile alone has none: the compile pair is fp32's (not 0.513 -> 0.44)
    expect(lookupTrainSpeedPair("flux1-dev", { ...sdpa, compile: false, fp8Matmul: false }, { ...sdpa, fp8Matmul: false }, 1).map((x) => x?.secondsPerStep)).toEqual([0.562, 0.44]);
    // SDXL's graph and graph + compile both have bf16 rows
    const sdxl = { gradientCheckpointing: false, compile: false, cudaGraphs: true, quantize: "none", fp8Matmul: false, attention: "sdpa", loraCompute: "bf16" } as const;
    expect(lookupTrainSpeedPair("sdxl", sdxl, { ...sdxl, compile: true }, 1).map((x) => x?.secondsPerStep)).toEqual([0.092, 0.078]);
  });
  it("never mixes kernels or LoRA compute modes, over every measured base and lever pair", () => {
    const bools = [false, true];
    for (const base of ["sdxl", "flux1-dev", "flux2-klein-4b", "flux2-klein-9b"] as const)
      for (const attention of ["sdpa", "fa4"] as const)
        for (const loraCompute of ["fp32", "bf16"] as const)
          for (const gradientCheckpointing of bools)
            for (const cudaGraphs of bools)
              for (const fp8Matmul of bools)
                for (const lever of ["compile", "fp8Matmul"] as const) {
                  const s = { gradientCheckpointing, compile: false, cudaGraphs, quantize: "none", fp8Matmul, attention, loraCompute } as const;
                  const [a, b] = lookupTrainSpeedPair(base, { ...s, [lever]: false }, { ...s, [lever]: true }, 1);
                  if (!a || !b) continue;
                  const where = `${base} ${attention} ${loraCompute} ckpt=${gradientCheckpointing} graphs=${cudaGraphs} fp8mm=${fp8Matmul} ${lever}`;
                  expect(Boolean(a.loraBf16), where).toBe(Boolean(b.loraBf16));
                  expect(/\+ FA4/.test(a.config), where).toBe(/\+ FA4/.test(b.config));
                }
  });
});
