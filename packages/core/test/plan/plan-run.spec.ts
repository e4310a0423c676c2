import { describe, expect, it } from "vitest";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { clipPretokenize } from "@loraspec/core/lint/clip-pretokenize.js";
import { compareVersions } from "@loraspec/core/knowledge/versions.js";
import { ARCH_RUN_COSTS } from "@loraspec/core/knowledge/whole-run.js";
import { BASE_MODELS, COMPATIBILITY, FAL_PRICES, GPUS, KNOWN_DEFECTS, LR_RANGES, VRAM_FACTS, getBaseModel } from "@loraspec/core/knowledge/index.js";
import { contract, dataset } from "../lint/helpers.js";

describe("estimateVram against the published calibration points (perf-reliability.md §2.3)", () => {
  it.each([
    ["Flux fp8 1024 r16 cached ckpt bs1 ~18-19 GB", { base: { model: "flux1-dev" as const, quantize: "fp8" as const } }, 17.5, 20],
    ["Flux NF4 1024 >= 12 GB", { base: { model: "flux1-dev" as const, quantize: "nf4" as const } }, 12, 15],
    ["SDXL LoRA 1024 cached 8-10 GB", { base: { model: "sdxl" as const, quantize: "none" as const } }, 8, 10],
    ["Flux bf16 without caching is far above 24 GB", { base: { model: "flux1-dev" as const, quantize: "none" as const }, hyperparameters: { cache_latents: false, cache_text_encoder_outputs: false } }, 35, 60],
  ])("%s", (_name, patch, lo, hi) => {
    const plan = planRun(contract(patch), dataset(20));
    expect(plan.vram.totalGb).toBeGreaterThanOrEqual(lo);
    expect(plan.vram.totalGb).toBeLessThanOrEqual(hi);
  });

  it("grows with batch size and without gradient checkpointing", () => {
    const one = planRun(contract(), dataset(20)).vram.totalGb;
    const four = planRun(contract({ hyperparameters: { batch_size: 4, steps: 500, save_every: 100 } }), dataset(20)).vram.totalGb;
    const noCkpt = planRun(contract({ hyperparameters: { gradient_checkpointing: false, steps: 2000, save_every: 250 } }), dataset(20)).vram.totalGb;
    expect(four).toBeGreaterThan(one);
    expect(noCkpt).toBeGreaterThan(one);
  });
});

describe("planRun", () => {
  it("resolves steps from passes per image, and repeats x epochs", () => {
    const plan = planRun(contract({ hyperparameters: { steps: undefined, passes_per_image: 100, batch_size: 2, save_every: 250 } }), dataset(20));
    expect(plan.steps).toBe(1000);
    expect(plan.passesPerImage).toBe(100);
    expect(plan.repeats).toBe(10);
    expect(plan.stepsPerEpoch).toBe(100);
    expect(plan.epochs).toBe(10);
    expect(plan.images).toEqual({ count: 20, source: "scan" });
  });

  it("takes steps and LR from the knowledge base when the contract leaves them out", () => {
    const plan = planRun(contract({ hyperparameters: { learning_rate: undefined, steps: undefined, save_every: 250 } }), dataset(20));
    expect(plan.steps).toBe(2000);
    expect(plan.stepsSource).toMatch(/knowledge/);
    expect(plan.learningRate).toBe(1e-4);
    expect(plan.learningRateSource).toMatch(/knowledge/);
  });

  it("uses expected_images without a scan", () => {
    expect(planRun(contract()).images).toEqual({ count: 20, source: "contract" });
  });

  it("prices fal by steps from the record, saying which figure it used", () => {
    const plan = planRun(contract({ trainer: { name: "fal", version: undefined }, hardware: { kind: "fal" }, base: { model: "flux2-dev" } }));
    expect(plan.trainer.endpoint).toBe("fal-ai/flux-2-trainer");
    expect(plan.cost.usd).toBe(16);
    expect(plan.cost.basis).toMatch(/fal price record \(\$0\.008 per step, as of 2026-04-30\) x 2000 steps/);
  });

  it("applies a billed minimum", () => {
    const plan = planRun(
      contract({ trainer: { name: "fal", endpoint: "fal-ai/flux-kontext-trainer" }, hardware: { kind: "fal" }, hyperparameters: { steps: 200, save_every: 100 } }),
    );
    expect(plan.cost.usd).toBe(1.25);
  });

  it("prefers a live fal price", () => {
    const plan = planRun(contract({ trainer: { name: "fal" }, hardware: { kind: "fal" }, base: { model: "flux2-dev" } }), undefined, {
      livePrices: [{ endpoint: "fal-ai/flux-2-trainer", unitPrice: 0.0064, usdPerStep: 0.0064, unit: "step", currency: "USD", fetchedAt: "2026-11-29T00:00:00Z" }],
    });
    expect(plan.cost.usd).toBe(12.8);
    expect(plan.cost.basis).toMatch(/live fal price/);
  });

  it("prices a local GPU by hours x $/h, from the H200 anchor scaled to the card", () => {
    const plan = planRun(contract(), dataset(20));
    expect(plan.selected?.gpu).toBe("rtx4090");
    expect(plan.selected?.basis).toBe("scaled");
    expect(plan.cost.usd).toBeCloseTo(plan.selected!.hours * 0.7, 2);
    expect(plan.walltime).toHaveLength(GPUS.length);
  });

  it("scales time with resolution", () => {
    const full = planRun(contract({ hardware: { gpu: "H100" } })).selected!;
    const half = planRun(contract({ hardware: { gpu: "H100" }, dataset: { path: "./d", resolution: 512 } })).selected!;
    expect(full.basis).toBe("scaled");
    expect(half.secondsPerStep).toBeLessThan(full.secondsPerStep / 2);
  });
});

describe("knowledge records", () => {
  it("every record cites a source and a date", () => {
    const all = [...BASE_MODELS, ...COMPATIBILITY, ...FAL_PRICES, ...GPUS, ...KNOWN_DEFECTS, ...LR_RANGES, ...VRAM_FACTS];
    for (const r of all) {
      expect(r.source.length, JSON.stringify(r)).toBeGreaterThan(5);
      expect(r.asOf).toMatch(/^\d{4}-\d{2}(-\d{2})?$/);
    }
  });

  it.each([
    ["kohya", "flux2-dev", false],
    ["kohya", "flux1-dev", true],
    ["fluxgym", "qwen-image", false],
    ["fluxgym", "zimage-turbo", false],
    ["ai-toolkit", "flux2-klein-9b", true],
    ["fal", "sdxl", false],
  ])("%s x %s supported: %s", (trainer, base, supported) => {
    const rec = COMPATIBILITY.find((r) => r.trainer === trainer && r.base === base);
    expect(rec?.supported).toBe(supported);
  });

  it("has every base model the schema allows", () => {
    expect(getBaseModel("zimage-turbo")?.captionEncoder).toBe("llm");
    expect(getBaseModel("sdxl")?.captionEncoder).toBe("clip");
  });
});

describe("helpers", () => {
  it.each([
    ["v0.10.1", "v0.10.0", 1],
    ["0.9.9", "v0.10.0", -1],
    ["v24.1.7", "24.1.7", 0],
    ["48d368f", "v0.10.0", undefined],
  ])("compareVersions(%s, %s) = %s", (a, b, want) => {
    expect(compareVersions(a, b)).toBe(want);
  });

  it.each([
    ["txcl", ["txcl</w>"]],
    ["TXCL2024", ["txcl</w>", "2</w>", "0</w>", "2</w>", "4</w>"]],
    ["ohwx_man", ["ohwx</w>", "_</w>", "man</w>"]],
    ["it's", ["it</w>", "'s</w>"]],
  ])("clipPretokenize(%s)", (text, want) => {
    expect(clipPretokenize(text)).toEqual(want);
  });
});

describe("planRun with the built-in trainer's measured speeds (knowledge/train-speed.ts)", () => {
  const builtIn = (patch: Parameters<typeof contract>[0] = {}) =>
    contract({
      trainer: { name: "diffusers", version: undefined },
      // base.quantize left out: the plan decides (a written none is a pin, quantize-pin.spec.ts).
      base: { model: "flux1-dev", quantize: undefined },
      hardware: { kind: "local", gpu: "H200", vram_gb: 141, price_per_hour: 3.5 },
      limits: { vram_ceiling_gb: undefined, max_cost_usd: undefined },
      hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250, optimizer: "adamw" },
      ...patch,
    });

  it("counts every GPU of every host (hardware.nodes) in the effective batch and the cost", () => {
    const plan = (hardware: Record<string, unknown>) =>
      planRun(builtIn({ hardware: { kind: "local", gpu: "H200", vram_gb: 141, price_per_hour: 3.5, ...hardware } as never }), dataset(20));
    const one = plan({ gpus: 2 });
    const two = plan({ gpus: 2, nodes: 2, rendezvous: "n0:29500" });
    expect([one.gpus, two.gpus, two.effectiveBatch]).toEqual([2, 4, 4 * one.effectiveBatch / 2]);
    expect(two.cost.usd).toBeCloseTo((one.cost.usd! / 2) * 4, 1);
  });

  it("picks the fastest configuration that fits and times it from the H200 row, warm-up included", () => {
    const plan = planRun(builtIn(), dataset(20));
    expect(plan.trainSettings).toMatchObject({ gradientCheckpointing: false, compile: true, cudaGraphs: false, quantize: "none" });
    expect(plan.trainSettings.fp8Matmul).toBe(true);
    expect(plan.trainSettings.attention).toBe("fa4");
    // the FA4 row ran the LoRA in fp32; the plan's bf16 LoRA takes its twin pair's measured ratio (0.396 -> 0.383, torch's kernel, one run)
    expect(plan.trainSettings.loraCompute).toBe("bf16");
    expect(plan.selected).toMatchObject({ gpu: "h200", basis: "derived", secondsPerStep: Math.round(0.306 * (0.383 / 0.396) * 1000) / 1000 });
    expect(plan.selected?.config).toMatch(/^fast \+ fp8 GEMMs \+ FA4, batch 1: 0\.306 s\/step \(LoRA fp32\) x 0\.967 for the LoRA in bf16 \(its twin pair of these levers, torch's attention kernel: 0\.396 -> 0\.383 s\/step, one run\)/);
    // the whole run: the FA4 row's steps x the worker's loop, its first steps beyond steady, and the fixed parts (plan/walltime-parts.ts)
    const part = (name: string) => plan.selected!.parts.find((p) => p.part === name)!.seconds;
    expect(part("steps")).toBeCloseTo(2000 * plan.selected!.secondsPerStep * ARCH_RUN_COSTS.flux1!.loopFactor[plan.trainSettings.loraCompute], 0);
    expect(part("warm-up")).toBeCloseTo(49.1 - 5 * 0.306, 0);
    expect(plan.selected?.hours).toBe(Math.round((plan.selected!.parts.reduce((s, p) => s + p.seconds, 0) / 3600) * 100) / 100);
    expect(plan.walltime.find((w) => w.gpu === "h100")?.basis).toBe("scaled");
    // the A100 (no float8 tensor cores) and the 4090 (no row-wise fp8 GEMM in torch): scaled from the compiled bf16 row
    expect(plan.walltime.find((w) => w.gpu === "a100")?.config).toMatch(/^fast, batch 1/);
    expect(plan.walltime.find((w) => w.gpu === "rtx4090")?.config).toMatch(/^fast, batch 1/);
    expect(plan.walltime.find((w) => w.gpu === "h100")?.config).toMatch(/^fast \+ fp8 GEMMs \+ FA4/);
    expect(plan.walltime.find((w) => w.gpu === "rtx4090")?.secondsPerStep).toBeGreaterThan(plan.selected?.secondsPerStep ?? Infinity);
    expect(plan.trainSettings.choices.find((c) => c.setting === "gradient_checkpointing")?.why).toMatch(/^off: the peak without it .* fits 141 GB \(hardware\.vram_gb\)/);
  });

  it("takes checkpointing and an fp8 base under 24 GB, and says why", () => {
    const plan = planRun(builtIn({ hardware: { kind: "local", gpu: "RTX 4090", vram_gb: 24 } }), dataset(20));
    expect(plan.trainSettings).toMatchObject({ gradientCheckpointing: true, quantize: "fp8" });
    expect(plan.vram.totalGb).toBeLessThanOrEqual(24);
    expect(plan.trainSettings.choices.find((c) => c.setting === "quantize")?.why).toMatch(/only an fp8 base fits 24 GB/);
    expect(plan.selected?.basis).toBe("scaled");
  });

  it("derives an unmeasured combination from FLUX.1's lever ratio", () => {
    const plan = planRun(builtIn({ base: { model: "flux2-klein-4b", quantize: "none" }, hyperparameters: { learning_rate: 1e-4, steps: 2000, gradient_checkpointing: true } }), dataset(20));
    expect(plan.selected?.basis).toBe("derived");
    expect(plan.selected?.config).toMatch(/for checkpointing \(FLUX\.1\)/);
  });

  it("times ai-toolkit from its own H200 rows (fp8 base: its fp8 row) with the built-in trainer's checkpointing ratio", () => {
    const plan = planRun(contract(), dataset(20));
    expect(plan.trainSettings).toMatchObject({ gradientCheckpointing: true, compile: false, cudaGraphs: false });
    const h200 = plan.walltime.find((w) => w.gpu === "h200")!;
    expect(h200.basis).toBe("derived");
    expect(h200.config).toBe("ai-toolkit 0.869 s/step, batch 1, fp8 base x 1.53 for checkpointing (built-in, flux1-dev)");
    expect(plan.walltime.filter((w) => w.gpu !== "h200").every((w) => w.basis === "scaled")).toBe(true);
  });
});
