import { describe, expect, it } from "vitest";
import { getBaseModel, BASE_MODEL_IDS } from "@loraspec/core/knowledge/base-models.js";
import { GPUS } from "@loraspec/core/knowledge/gpus.js";
import { TRAIN_SPEEDS } from "@loraspec/core/knowledge/train-speed.js";
import { speedRowSettings } from "@loraspec/core/plan/train-speed.js";
import { TRAINER_SPEEDS } from "@loraspec/core/knowledge/trainer-speeds.js";
import { getCompatibility } from "@loraspec/core/knowledge/trainers.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { walltimeOn } from "@loraspec/core/plan/walltime.js";
import type { TrainSettings } from "@loraspec/core/plan/train-settings.js";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { contract } from "../lint/helpers.js";

const h200 = GPUS.find((g) => g.id === "h200")!;
const settingsOf = (over: Partial<TrainSettings>): TrainSettings => ({ gradientCheckpointing: false, compile: false, cudaGraphs: false, quantize: "none", fp8Matmul: false, attention: "sdpa", loraCompute: "fp32", sampleMerge: "none", channelsLast: false, cudaKnown: true, choices: [], ...over });
const within = (got: number, want: number, tol = 0.1) => expect(Math.abs(got / want - 1), `${got} vs ${want}`).toBeLessThanOrEqual(tol);

describe("the plan reproduces every measured row within 10%", () => {
  // cuDNN SDPA is not a lever the plan turns on, so its row is not a plan configuration.
  const rows = TRAIN_SPEEDS.filter((r) => !r.levers.includes("cudnn_sdpa"));
  it.each(rows.map((r) => [`${r.base} ${r.config} b${r.batch}${r.gradientCheckpointing ? " ckpt" : ""}${r.attention ? ` ${r.attention}` : ""}${r.targets ? ` ${r.targets}` : ""} (${r.asOf})`, r] as const))("built-in %s", (_n, r) => {
    const c = contract({ base: { model: r.base, quantize: r.quantize }, trainer: { name: "diffusers", version: undefined }, hyperparameters: { learning_rate: 1e-4, steps: 1000, batch_size: r.batch, save_every: 250 }, ...(r.targets ? { network: { targets: r.targets } } : {}) });
    const s = settingsOf(speedRowSettings(r));
    const w = walltimeOn(h200, getBaseModel(r.base)!, c, 1024, 1000, s);
    within(w.secondsPerStep, r.secondsPerStep);
    expect(w.basis).toBe("measured");
  });
  it.each(TRAINER_SPEEDS.map((r) => [`${r.trainer} ${r.base}${r.quantize === "fp8" ? " fp8" : ""}`, r] as const))("%s, through planRun", (_n, r) => {
    const c = contract({
      base: { model: r.base, quantize: r.quantize },
      trainer: { name: r.trainer, version: r.trainer === "kohya" ? "v0.10.1" : "0.12.26" },
      hardware: { kind: "local", gpu: "H200", vram_gb: 141 },
      hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250, gradient_checkpointing: r.gradientCheckpointing },
      limits: { vram_ceiling_gb: undefined, max_cost_usd: undefined },
    });
    const sel = planRun(c).selected!;
    within(sel.secondsPerStep, r.secondsPerStep);
    expect(sel.basis).toBe("measured");
    expect(sel.source).toContain(/bench\/data\/\S+\.(jsonl|log)/.exec(r.source)![0]);
  });
});

/** A card at least as fast as another in dense bf16 and memory bandwidth (a different card). */
const dominates = (a: (typeof GPUS)[number], b: (typeof GPUS)[number]) => a.denseBf16Tflops >= b.denseBf16Tflops && a.memBandwidthTBs >= b.memBandwidthTBs && a.id !== b.id;

/** The plan's hours per card for `c`, after checking that no card is slower than one it dominates. */
function monotoneHours(c: Contract): (id: string) => number {
  const table = planRun(c).walltime;
  const hours = (id: string) => table.find((w) => w.gpu === id)!.hours;
  for (const a of GPUS) for (const b of GPUS) if (dominates(a, b)) expect(hours(a.id), `${a.id} vs ${b.id}`).toBeLessThanOrEqual(hours(b.id));
  return hours;
}

describe("faster cards never get longer walltimes", () => {
  const workloads = BASE_MODEL_IDS.flatMap((base) =>
    (["diffusers", "kohya", "ai-toolkit"] as const)
      .filter((t) => getCompatibility(t, base)?.supported)
      .flatMap((trainer) => [true, false].map((ckpt) => [base, trainer, ckpt] as const)),
  );
  it.each(workloads)("%s / %s / checkpointing %s", (base, trainer, ckpt) => {
    const c = contract({
      base: { model: base, quantize: "none" },
      trainer: { name: trainer, version: trainer === "kohya" ? "v0.10.1" : trainer === "ai-toolkit" ? "0.12.26" : undefined },
      hardware: { kind: "local", gpu: "H200", vram_gb: 141 },
      hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250, gradient_checkpointing: ckpt },
      limits: { vram_ceiling_gb: undefined, max_cost_usd: undefined },
    });
    const hours = monotoneHours(c);
    // the issue's example: H100 and A100 are never slower than the RTX 4090, the L40S never ties the H200
    expect(hours("h100")).toBeLessThan(hours("rtx4090"));
    expect(hours("a100")).toBeLessThan(hours("rtx4090"));
    expect(hours("l40s")).toBeGreaterThan(hours("h200"));
  });
});

describe("faster cards never get longer walltimes, the built-in trainer on every linear (its measured all-linear rows)", () => {
  it.each(["sdxl", "flux1-dev", "flux2-klein-4b"] as const)("%s", (base) => {
    const c = contract({
      base: { model: base, quantize: "none" },
      trainer: { name: "diffusers", version: undefined },
      network: { targets: "all-linear" },
      hardware: { kind: "local", gpu: "H200", vram_gb: 141 },
      hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250, gradient_checkpointing: false },
      limits: { vram_ceiling_gb: undefined, max_cost_usd: undefined },
    });
    monotoneHours(c);
  });
});

describe("the issue's figures", () => {
  // The figures of the second 2026-12-05 lease (knowledge/trainer-speeds.ts; 0.83 / 1.15 on 2026-11-29, from the epoch timestamps).
  it("Kohya on an H200: FLUX.1 0.784 and SDXL 1.037 s/step (not 3.0 / 0.40)", () => {
    const kohya = (model: "flux1-dev" | "sdxl") =>
      planRun(contract({ base: { model, quantize: "none" }, trainer: { name: "kohya", version: "v0.10.1" }, hardware: { kind: "local", gpu: "H200", vram_gb: 141 }, hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250, gradient_checkpointing: false }, limits: { vram_ceiling_gb: undefined } })).selected!;
    expect(kohya("flux1-dev").secondsPerStep).toBe(0.784);
    expect(kohya("sdxl").secondsPerStep).toBe(1.037);
  });
});

describe("each external trainer from its own rows (knowledge/trainer-speeds.ts)", () => {
  const plan = (trainer: "kohya" | "ai-toolkit", model: "flux1-dev" | "flux2-klein-4b" | "flux2-klein-9b" | "sdxl" | "qwen-image", quantize: "none" | "fp8", ckpt: boolean) =>
    planRun(contract({ base: { model, quantize }, trainer: { name: trainer, version: trainer === "kohya" ? "v0.10.1" : "0.12.26" }, hardware: { kind: "local", gpu: "H200", vram_gb: 141 }, hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250, gradient_checkpointing: ckpt }, limits: { vram_ceiling_gb: undefined } })).selected!;
  const speed = (trainer: string, base: string, quantize = "none") => TRAINER_SPEEDS.find((r) => r.trainer === trainer && r.base === base && r.quantize === quantize)!.secondsPerStep;
  const eager = (base: string, ckpt = false) => TRAIN_SPEEDS.find((r) => !r.attention && !r.targets && r.base === base && r.config === "eager" && r.batch === 1 && r.gradientCheckpointing === ckpt && r.levers.length === 0)!.secondsPerStep;

  it("ai-toolkit + fp8 on FLUX.1: its fp8 row, checkpointing by the built-in ratio, no built-in fp8 ratio", () => {
    const w = plan("ai-toolkit", "flux1-dev", "fp8", true);
    within(w.secondsPerStep, speed("ai-toolkit", "flux1-dev", "fp8") * (eager("flux1-dev", true) / eager("flux1-dev")), 0.005);
    expect(w.config).toMatch(/^ai-toolkit 0\.869 s\/step, batch 1, fp8 base x 1\.53 for checkpointing \(built-in, flux1-dev\)$/);
    expect(w.source).toMatch(/aitk-h200-2026-12-05-same-lease2\.jsonl \(log bench\/data\/aitk-h200-2026-12-05-same-lease2-flux1-fp8\.log/);
  });

  it("a model ai-toolkit has no row for: the built-in eager row x ai-toolkit / built-in on FLUX.1 (not Kohya's)", () => {
    const ratio = speed("ai-toolkit", "flux1-dev") / eager("flux1-dev");
    for (const model of ["flux2-klein-9b", "sdxl"] as const) {
      const w = plan("ai-toolkit", model, "none", false);
      within(w.secondsPerStep, eager(model) * ratio, 0.005);
      expect(w.config).toMatch(/\(ai-toolkit \/ built-in on FLUX\.1\)$/);
      expect(w.basis).toBe("derived");
    }
    expect(plan("ai-toolkit", "qwen-image", "none", false).config).toMatch(/ai-toolkit's FLUX\.1 rate/);
  });

  it("an fp8 base ai-toolkit did not run on this model takes ai-toolkit's FLUX.1 fp8/bf16 ratio; klein 4B's its own fp8 row (2026-12-05)", () => {
    const w = plan("ai-toolkit", "flux2-klein-9b", "fp8", false);
    const bf16 = eager("flux2-klein-9b") * (speed("ai-toolkit", "flux1-dev") / eager("flux1-dev"));
    within(w.secondsPerStep, bf16 * (speed("ai-toolkit", "flux1-dev", "fp8") / speed("ai-toolkit", "flux1-dev")), 0.005);
    expect(w.config).toMatch(/for the fp8 base \(ai-toolkit, FLUX\.1\)$/);
    const k4 = plan("ai-toolkit", "flux2-klein-4b", "fp8", false);
    expect(k4.secondsPerStep).toBe(speed("ai-toolkit", "flux2-klein-4b", "fp8"));
    expect(k4.config).toBe("ai-toolkit 0.39 s/step, batch 1, fp8 base");
    expect(k4.basis).toBe("measured");
  });

  it("Kohya keeps its own rows and the built-in ratios", () => {
    expect(plan("kohya", "flux1-dev", "fp8", true).config).toBe("Kohya 0.784 s/step, batch 1 x 1.53 for checkpointing (built-in, flux1-dev) x 1.04 for the fp8 base (built-in, FLUX.1)");
    expect(plan("kohya", "flux2-klein-9b", "none", false).config).toMatch(/\(Kohya \/ built-in on FLUX\.1\)$/);
    expect(plan("kohya", "qwen-image", "none", false).config).toMatch(/Kohya's FLUX\.1 rate/);
  });
});
