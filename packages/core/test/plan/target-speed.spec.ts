import { describe, expect, it } from "vitest";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { GPUS } from "@loraspec/core/knowledge/gpus.js";
import { TARGET_SPEEDS } from "@loraspec/core/knowledge/target-speed.js";
import { walltimeOn } from "@loraspec/core/plan/walltime.js";
import type { TrainSettings } from "@loraspec/core/plan/train-settings.js";
import { contract } from "../lint/helpers.js";

const h200 = GPUS.find((g) => g.id === "h200")!;
const settingsOf = (over: Partial<TrainSettings>): TrainSettings => ({ gradientCheckpointing: false, compile: false, cudaGraphs: false, quantize: "none", fp8Matmul: false, attention: "sdpa", loraCompute: "fp32", sampleMerge: "none", channelsLast: false, cudaKnown: true, choices: [], ...over });
const within = (got: number, want: number, tol = 0.1) => expect(Math.abs(got / want - 1), `${got} vs ${want}`).toBeLessThanOrEqual(tol);

/** The plan's H200 s/step for a base, trainer, levers and network section. */
function secondsPerStep(base: "sdxl" | "flux1-dev" | "qwen-image" | "flux2-klein-4b" | "flux2-klein-9b", trainer: "diffusers" | "kohya", s: TrainSettings, network: Record<string, unknown>) {
  const c = contract({ base: { model: base }, trainer: { name: trainer, version: trainer === "kohya" ? "v0.10.1" : undefined }, network, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 } });
  return walltimeOn(h200, getBaseModel(base)!, c, 1024, 1000, s);
}

describe("the walltime follows network.targets (issue 22's all-linear rows)", () => {
  it("reproduces each all-linear row from its attention row within 10%", () => {
    for (const r of TARGET_SPEEDS) {
      const base = ({ sdxl: "sdxl", flux1: "flux1-dev", flux2: "flux2-klein-4b" } as const)[r.family];
      const fast = r.levers === "fast";
      const s = settingsOf(base === "sdxl" ? { cudaGraphs: fast, channelsLast: fast } : { compile: fast, fp8Matmul: fast && base === "flux1-dev" });
      const att = secondsPerStep(base, "diffusers", s, {});
      const all = secondsPerStep(base, "diffusers", s, { targets: "all-linear" });
      within(all.secondsPerStep / att.secondsPerStep, r.allLinearSecondsPerStep / r.attentionSecondsPerStep, 0.01);
      within(all.secondsPerStep, r.allLinearSecondsPerStep);
      expect(all.config).toMatch(/all-linear/);
      expect(all.source).toMatch(/issue 22/);
    }
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
  it("FLUX.1 all-linear without checkpointing adds the measured 17.4 GiB; with checkpointing and on SDXL nothing, said so", async () => {
    const { estimateVramWith } = await import("@loraspec/core/plan/vram-model.js");
    const est = (base: "flux1-dev" | "sdxl", network: Record<string, unknown>, ckpt: boolean) => {
      const c = contract({ base: { model: base }, trainer: { name: "diffusers", version: undefined }, network, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 } });
      return estimateVramWith(c, getBaseModel(base)!, 1024, settingsOf({ gradientCheckpointing: ckpt, compile: true, fp8Matmul: true }));
    };
    const extra = est("flux1-dev", { targets: "all-linear" }, false).parts.activations - est("flux1-dev", {}, false).parts.activations;
    within(extra, (62 - 44.64) * 1.0737, 0.02);
    expect(est("flux1-dev", { targets: "all-linear" }, true).totalGb).toBe(est("flux1-dev", {}, true).totalGb);
    expect(est("sdxl", { targets: "all-linear" }, false).assumptions.join(" ")).toMatch(/not measured/);
  });
});
