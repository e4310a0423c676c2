import { describe, expect, it } from "vitest";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { GPUS } from "@loraspec/core/knowledge/gpus.js";
import { walltimeOn } from "@loraspec/core/plan/walltime.js";
import { estimateVramWith } from "@loraspec/core/plan/vram-model.js";
import { SAMPLE_GRAPH_VRAM, VRAM_MODEL } from "@loraspec/core/knowledge/vram.js";
import { FORWARD_SHARE_OF_STEP, samplePath } from "@loraspec/core/plan/sample-time.js";
import { sampleMergeGb } from "@loraspec/core/plan/vram-extras.js";
import { sampleMergeKind } from "@loraspec/core/plan/sample-merge.js";
import { builtinArchOf } from "@loraspec/core/knowledge/builtin-trainer.js";
import { samplePassOf } from "@loraspec/core/knowledge/whole-run.js";
import { samplingOf } from "@loraspec/core/knowledge/sampling.js";
import type { TrainSettings } from "@loraspec/core/plan/train-settings.js";
import { contract } from "../lint/helpers.js";

const h200 = GPUS.find((g) => g.id === "h200")!;
const settings: TrainSettings = { gradientCheckpointing: false, compile: false, cudaGraphs: false, quantize: "none", fp8Matmul: false, attention: "sdpa", loraCompute: "fp32", sampleMerge: "none", channelsLast: false, cudaKnown: true, choices: [] };

describe("sampling time counts in the walltime", () => {
  const of = (samples: Record<string, unknown> | undefined, base: "sdxl" | "flux1-dev" | "flux2-klein-4b", trainer: "diffusers" | "kohya" = "diffusers") =>
    walltimeOn(h200, getBaseModel(base)!, contract({ base: { model: base }, trainer: { name: trainer, version: trainer === "kohya" ? "v0.10.1" : undefined }, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 }, ...(samples ? { samples } : {}) }), 1024, 1000, settings);

  it("FLUX.1, built-in: images x (inference steps x one measured pass + the rest of an image), on its sample path", () => {
    const off = of(undefined, "flux1-dev");
    const on = of({ every: 250, prompts: ["{trigger}"], seeds: [1, 2] }, "flux1-dev");
    expect(off.samplingSeconds).toBeUndefined();
    const pass = samplePassOf("flux1", "merge")!; // the LoRA merged per call (BUILTIN_TRAINER.sampleMerge)
    // 4 sampling steps (250..1000) x 1 prompt x 2 seeds = 8 images x 20 steps x 1 pass (embedded guidance).
    expect(on.samplingSeconds).toBe(Math.round(8 * (20 * pass.passSeconds + pass.imageExtraS) + pass.firstExtraS));
    expect(Math.abs(on.seconds - off.seconds - on.samplingSeconds!)).toBeLessThanOrEqual(1);
    expect(on.source).toMatch(/^sampling 8 images x \(20 steps x 1 pass\(es\) x 0\.245 s/);
    expect(on.parts.find((p) => p.part === "samples")?.why).toBe("8 images (merge sample path)");
  });

  it("SDXL with CFG counts two passes per inference step, on the merged sample graph", () => {
    const on = of({ every: 500, prompts: ["{trigger}"], seeds: [1] }, "sdxl");
    const pass = samplePassOf("sdxl", "graph+merge")!;
    expect(on.samplingSeconds).toBe(Math.round(2 * (20 * 2 * pass.passSeconds + pass.imageExtraS) + pass.firstExtraS));
  });

  it("where nothing is measured (another arch, another trainer) a pass is the FLOPs share of the run's step", () => {
    for (const [base, trainer, passes] of [["flux2-klein-4b", "diffusers", 2], ["sdxl", "kohya", 2], ["flux1-dev", "kohya", 1]] as const) {
      const on = of({ every: 500, prompts: ["{trigger}"], seeds: [1] }, base, trainer);
      expect(on.samplingSeconds, `${base} ${trainer}`).toBe(Math.round(2 * samplingOf(base).steps * passes * on.secondsPerStep * FORWARD_SHARE_OF_STEP.share));
      expect(on.source).toMatch(/perf-reliability\.md §1\.3/);
    }
  });
});

describe("samples in the VRAM plan", () => {
  it("the built-in trainer keeps the VAE resident to decode samples, with latents cached", () => {
    const vae = (samples?: Record<string, unknown>) =>
      estimateVramWith(contract({ base: { model: "flux1-dev" }, trainer: { name: "diffusers", version: undefined }, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 }, ...(samples ? { samples } : {}) }), getBaseModel("flux1-dev")!, 1024, { gradientCheckpointing: true, compile: false, cudaGraphs: false, quantize: "none" }).parts.vae;
    expect(vae()).toBe(0);
    expect(vae({ every: 100 })).toBe(VRAM_MODEL.vaeGb);
  });

  it("SDXL's samples add the sample graph's pool (an estimate, said so); FLUX.1's sample eagerly", () => {
    const est = (base: "sdxl" | "flux1-dev", samples?: Record<string, unknown>) =>
      estimateVramWith(contract({ base: { model: base }, trainer: { name: "diffusers", version: undefined }, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 }, ...(samples ? { samples } : {}) }), getBaseModel(base)!, 1024, { gradientCheckpointing: false, compile: false, cudaGraphs: true, quantize: "none" });
    const added = (base: "sdxl" | "flux1-dev") => est(base, { every: 250 }).totalGb - est(base).totalGb;
    expect(SAMPLE_GRAPH_VRAM.source).toMatch(/^estimate/);
    expect(est("sdxl", { every: 250 }).assumptions.join(" ")).toMatch(/sample CUDA graph pool \(\+0\.5 GB, estimate\)/);
    expect(est("sdxl", { every: 250 }).source).toMatch(/sample graph: estimate/);
    expect(est("sdxl").assumptions.join(" ")).not.toMatch(/sample CUDA graph/);
    expect(est("flux1-dev", { every: 250 }).assumptions.join(" ")).not.toMatch(/sample CUDA graph/);
    const merged = 955_187_200 * 2 / 1e9; // the merged sample weights (next test)
    expect(Math.abs(added("sdxl") - added("flux1-dev") - SAMPLE_GRAPH_VRAM.gb - merged)).toBeLessThan(0.15); // both add the VAE; parts round to 0.1
  });

  it("SDXL's merged sample weights: a second copy of the targeted weights in the base's dtype, only where the LoRA merges", () => {
    type Over = { network?: Record<string, unknown>; precision?: "fp32"; quantize?: "fp8"; fp8Matmul?: boolean; samples?: boolean; trainer?: "kohya" };
    const est = (o: Over = {}) =>
      estimateVramWith(
        contract({
          base: { model: "sdxl" },
          trainer: { name: o.trainer ?? "diffusers", version: undefined },
          hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250, ...(o.precision ? { precision: o.precision } : {}) },
          ...(o.network ? { network: o.network } : {}),
          ...(o.samples === false ? {} : { samples: { every: 250 } }),
        }),
        getBaseModel("sdxl")!,
        1024,
        { gradientCheckpointing: false, compile: false, cudaGraphs: true, quantize: o.quantize ?? "none", fp8Matmul: o.fp8Matmul },
      );
    const line = (o: Over = {}) => est(o).assumptions.find((a) => a.startsWith("samples with the LoRA merged"));
    // 560 attention modules of the full-size UNet (lora/architectures.ts): 955,187,200 weights; all-linear's 722: 2,207,744,000.
    expect(line()).toBe("samples with the LoRA merged: +1.91 GB for a second copy of the 560 targeted weights (attention, 955M x 2 B)");
    expect(line({ network: { targets: "all-linear" } })).toMatch(/\+4\.42 GB .* 722 targeted weights \(all-linear, 2208M x 2 B\)/);
    expect(line({ network: { modules: ["to_q"] } })).toMatch(/140 targeted weights \(custom/);
    expect(line({ precision: "fp32" })).toMatch(/\+3\.82 GB .* x 4 B/);
    expect(est().source).toMatch(/sample merge: lora\/architectures\.ts/);
    for (const o of [{ network: { type: "dora" } }, { network: { type: "lokr" } }, { quantize: "fp8" as const }, { fp8Matmul: true }, { samples: false }]) expect(line(o), JSON.stringify(o)).toBeUndefined();
    // Counted in the total: samples on add 1.91 GB more to a LoRA run than to a DoRA run (parts round to 0.1).
    const dora = { network: { type: "dora" } };
    const added = (o: Over) => est(o).totalGb - est({ ...o, samples: false }).totalGb;
    expect(Math.abs(added({}) - added(dora) - 1.91)).toBeLessThan(0.15);
  });
});

describe("the sample path the walltime times is the one the VRAM plan sizes", () => {
  // samplePath (plan/sample-time.ts) and sampleMergeGb (plan/vram-extras.ts) both read BUILTIN_TRAINER.sampleMerge:
  // the time of merged samples and the memory of their buffers must never disagree.
  const cases = (["sdxl", "flux1-dev", "flux2-klein-4b"] as const).flatMap((base) =>
    (["lora", "dora", "lokr"] as const).flatMap((type) =>
      (["none", "fp8"] as const).flatMap((quantize) => [false, true].flatMap((fp8Matmul) => [false, true].map((compile) => [base, type, quantize, fp8Matmul, compile] as const))),
    ),
  );
  it.each(cases)("%s %s quantize %s fp8_matmul %s compile %s", (base, type, quantize, fp8Matmul, compile) => {
    const c = contract({ base: { model: base }, trainer: { name: "diffusers", version: undefined }, network: { type }, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 }, samples: { every: 250 } });
    const model = getBaseModel(base)!;
    const kind = sampleMergeKind(builtinArchOf(model.id).arch, type, { quantize, fp8Matmul, compile });
    // the timed path merges whenever the worker merges (buffers or per call), is the compiled one when the worker
    // samples through the compiled blocks; only the buffers take memory
    const path = samplePath(model, c, { quantize, fp8Matmul, compile });
    expect(path.endsWith("merge")).toBe(kind === "buffers" || kind === "per_call");
    expect(path === "compiled").toBe(kind === "compiled");
    expect(kind === "buffers").toBe(sampleMergeGb(model, c, { quantize, fp8Matmul }, 2) !== undefined);
  });
});
