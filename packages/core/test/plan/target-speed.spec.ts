import { describe, expect, it } from "vitest";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { GPUS } from "@loraspec/core/knowledge/gpus.js";
import { TARGET_SPEEDS } from "@loraspec/core/knowledge/target-speed.js";
import { TRAIN_SPEEDS } from "@loraspec/core/knowledge/train-speed.js";
import { walltimeOn } from "@loraspec/core/plan/walltime.js";
import type { TrainSettings } from "@loraspec/core/plan/train-settings.js";
import { contract } from "../lint/helpers.js";

const h200 = GPUS.find((g) => g.id === "h200")!;
const settingsOf = (over: Partial<TrainSettings>): TrainSettings => ({ gradientCheckpointing: false, compile: false, cudaGraphs: false, quantize: "none", fp8Matmul: false, attention: "sdpa", loraCompute: "fp32", sampleMerge: "none", channelsLast: false, cudaKnown: true, choices: [], ...over });
/** The bench's lever names for these settings (the reading speedRowSettings inverts). */
const speedLevers = (s: TrainSettings) => [...(s.compile || s.cudaGraphs ? ["fused"] : []), ...(s.channelsLast ? ["channels_last"] : []), ...(s.compile ? ["compile"] : []), ...(s.cudaGraphs ? ["graphs"] : []), ...(s.fp8Matmul ? ["fp8mm"] : [])];
const within = (got: number, want: number, tol = 0.1) => expect(Math.abs(got / want - 1), `${got} vs ${want}`).toBeLessThanOrEqual(tol);

/** The plan's H200 s/step for a base, trainer, levers and network section. */
function secondsPerStep(base: "sdxl" | "flux1-dev" | "qwen-image" | "flux2-klein-4b" | "flux2-klein-9b", trainer: "diffusers" | "kohya", s: TrainSettings, network: Record<string, unknown>) {
  const c = contract({ base: { model: base }, trainer: { name: trainer, version: trainer === "kohya" ? "v0.10.1" : undefined }, network, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 } });
  return walltimeOn(h200, getBaseModel(base)!, c, 1024, 1000, s);
}

describe("the walltime follows network.targets (issue 22's all-linear rows)", () => {
  // Where the built-in trainer's all-linear row of the exact settings is measured (knowledge/train-speed.ts, targets "all-linear"),
  // the walltime takes it as is; elsewhere the attention row x the preset's ratio of TARGET_SPEEDS.
  it.each(TARGET_SPEEDS.map((r) => [`${r.family} ${r.levers}`, r] as const))("%s: the measured all-linear row, else the attention row x the ratio within 10%", (_n, r) => {
    const base = ({ sdxl: "sdxl", flux1: "flux1-dev", flux2: "flux2-klein-4b" } as const)[r.family];
    const fast = r.levers === "fast";
    const s = settingsOf(base === "sdxl" ? { cudaGraphs: fast, channelsLast: fast } : { compile: fast, fp8Matmul: fast && base === "flux1-dev" });
    const levers = [...speedLevers(s)].sort().join();
    const rows = TRAIN_SPEEDS.filter((x) => x.targets === "all-linear" && x.base === base && !x.attention && [...x.levers].sort().join() === levers);
    const att = secondsPerStep(base, "diffusers", s, {});
    const all = secondsPerStep(base, "diffusers", s, { targets: "all-linear" });
    expect(all.config).toMatch(/all-linear/);
    if (rows.length > 0) {
      expect(all.secondsPerStep).toBe(Math.min(...rows.map((x) => x.secondsPerStep)));
      expect(all.basis).toBe("measured");
      return;
    }
    within(all.secondsPerStep / att.secondsPerStep, r.allLinearSecondsPerStep / r.attentionSecondsPerStep, 0.01);
    within(all.secondsPerStep, r.allLinearSecondsPerStep);
    expect(all.source).toMatch(/issue 22/);
  });

  it("FLUX.1 all-linear on an H200 with FA4, compile, fp8 GEMMs and the LoRA in bf16: the measured 0.319 of 2026-12-05, no ratio on top", () => {
    const s = settingsOf({ compile: true, fp8Matmul: true, attention: "fa4", loraCompute: "bf16" });
    const all = secondsPerStep("flux1-dev", "diffusers", s, { targets: "all-linear" });
    expect(all.secondsPerStep).toBe(0.319);
    expect(all.basis).toBe("measured");
    expect(all.config).toBe("fast + fp8 GEMMs + LoRA bf16 + FA4, all-linear, batch 1: 0.319 s/step");
    expect(all.source).toContain("bench/data/gpu-speed-h200-2026-12-05-same-lease2.jsonl");
    // attention-mlp costs at most all-linear's: the same row, said so
    const mlp = secondsPerStep("flux1-dev", "diffusers", s, { targets: "attention-mlp" });
    expect(mlp.secondsPerStep).toBe(0.319);
    expect(mlp.basis).toBe("derived");
    expect(mlp.config).toMatch(/attention-mlp taken as all-linear/);
    // a card without FA4 or fp8 GEMMs (an A100) starts from torch's kernel's all-linear row without them where one is measured (klein 4B)
    const a100 = walltimeOn(GPUS.find((g) => g.id === "a100")!, getBaseModel("flux2-klein-4b")!, contract({ base: { model: "flux2-klein-4b" }, trainer: { name: "diffusers", version: undefined }, network: { targets: "all-linear" }, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 } }), 1024, 1000, s);
    expect(a100.config).toBe("fast + LoRA bf16, all-linear, batch 1: 0.204 s/step");
    expect(a100.basis).toBe("scaled");
    // a card with FA4 but without the fp8 GEMMs (a B200): the FA4 row x the attention rows' ratio without / with them
    const b200 = walltimeOn(GPUS.find((g) => g.id === "b200")!, getBaseModel("flux1-dev")!, contract({ base: { model: "flux1-dev" }, trainer: { name: "diffusers", version: undefined }, network: { targets: "all-linear" }, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 } }), 1024, 1000, s);
    expect(b200.config).toBe("fast + fp8 GEMMs + LoRA bf16 + FA4, all-linear, batch 1: 0.319 s/step x 1.09 without fp8 GEMMs (attention preset: 0.402 -> 0.44 s/step)");
  });

  it("left out, nothing moves; Kohya's rows are its all-linear default, attention-mlp costs as much", () => {
    const s = settingsOf({});
    const kohya = secondsPerStep("flux1-dev", "kohya", s, {});
    expect(kohya.basis).toBe("measured");
    expect(secondsPerStep("flux1-dev", "kohya", s, { targets: "attention-mlp" }).secondsPerStep).toBe(kohya.secondsPerStep);
    expect(secondsPerStep("flux1-dev", "kohya", s, { targets: "attention" }).secondsPerStep).toBeLessThan(kohya.secondsPerStep);
    expect(secondsPerStep("flux1-dev", "diffusers", s, { modules: ["to_q", "to_v"] }).secondsPerStep).toBe(secondsPerStep("flux1-dev", "diffusers", s, {}).secondsPerStep);
  });

  it("an unmeasured transformer takes FLUX.1's ratio, said so; klein 9B takes klein 4B's (its family's)", () => {
    const w = secondsPerStep("qwen-image", "diffusers", settingsOf({}), { targets: "all-linear" });
    expect(w.config).toMatch(/FLUX\.1's/);
    const k9 = secondsPerStep("flux2-klein-9b", "diffusers", settingsOf({}), { targets: "all-linear" });
    expect(k9.config).not.toMatch(/FLUX\.1's/);
    expect(k9.config).toMatch(/all-linear\/attention 1\.09/);
  });
});

describe("the VRAM estimate follows network.targets where measured", () => {
  it("FLUX.1 all-linear without checkpointing adds the measured 17.4 GiB, SDXL its measured 2.35 GiB; with checkpointing nothing", async () => {
    const { estimateVramWith } = await import("@loraspec/core/plan/vram-model.js");
    const est = (base: "flux1-dev" | "sdxl", network: Record<string, unknown>, ckpt: boolean) => {
      const c = contract({ base: { model: base }, trainer: { name: "diffusers", version: undefined }, network, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 } });
      return estimateVramWith(c, getBaseModel(base)!, 1024, settingsOf({ gradientCheckpointing: ckpt, compile: true, fp8Matmul: true }));
    };
    const extra = est("flux1-dev", { targets: "all-linear" }, false).parts.activations - est("flux1-dev", {}, false).parts.activations;
    within(extra, (62 - 44.64) * 1.0737, 0.02);
    expect(est("flux1-dev", { targets: "all-linear" }, true).totalGb).toBe(est("flux1-dev", {}, true).totalGb);
    const sdxl = est("sdxl", { targets: "all-linear" }, false);
    within(sdxl.parts.activations - est("sdxl", {}, false).parts.activations, (14.88 - 12.53) * 1.0737, 0.05);
    expect(sdxl.assumptions.join(" ")).toMatch(/all-linear peak 14\.88 GiB/);
  });
});
