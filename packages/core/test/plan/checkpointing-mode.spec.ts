import { describe, expect, it } from "vitest";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { BUILTIN_TRAINER } from "@loraspec/core/knowledge/builtin-trainer.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { VRAM_SELECTIVE_ACTIVATIONS } from "@loraspec/core/knowledge/vram.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { resolveTrainSettings } from "@loraspec/core/plan/train-settings.js";
import { estimateVramWith } from "@loraspec/core/plan/vram-model.js";
import { dataset } from "../lint/helpers.js";
import { benchLines as lines } from "./bench-lines.js";
import { CACHE_PATHS, fluxWithCeiling } from "./flux-ceiling-fixture.js";

/** Issue 22: checkpointing off | full | selective, decided in core with the reason shown; the compile cache folder in the request. */
const flux = fluxWithCeiling;
const PATHS = CACHE_PATHS;
const modeChoice = (c: ReturnType<typeof flux>) => resolveTrainSettings(c, { steps: 2000 }).choices.find((x) => x.setting === "checkpointing_mode");

describe("checkpointing mode (plan/train-settings.ts)", () => {
  it("models selective as full checkpointing plus one attention output per block, as measured (2026-12-06 rows 42 and 43)", () => {
    const rec = VRAM_SELECTIVE_ACTIVATIONS.flux1!;
    expect(rec).toMatchObject({ keptPerBlock: 1, bytesPerElement: 2, asOf: "2026-12-06" });
    expect(rec.verified).not.toBe(false);
    expect(rec.source).toMatch(/gpu-speed-h200-2026-12-06-flux1-ckpt-selective-fa4\.jsonl/);
    // The model's figure (tokens x hidden x blocks x 2 B, with the fragmentation allowance) against the measured peaks' difference.
    const [full, selective] = lines(rec.source).filter((l) => l.config?.startsWith("fast + fp8 GEMMs + LoRA bf16"));
    expect([full?.gradient_checkpointing, selective?.gradient_checkpointing]).toEqual([true, "selective-attention"]);
    const measuredGb = ((selective!.peak_alloc_gib! - full!.peak_alloc_gib!) * 2 ** 30) / 1e9;
    const model = getBaseModel("flux1-dev")!;
    const settings = { gradientCheckpointing: true, compile: true, cudaGraphs: false, quantize: "none", fp8Matmul: true, attention: "fa4", loraCompute: "bf16" } as const;
    const c = flux(45);
    const estimate = (mode: "full" | "selective") => estimateVramWith(c, model, 1024, { ...settings, checkpointingMode: mode });
    expect(estimate("selective").totalGb - estimate("full").totalGb).toBeCloseTo(measuredGb, 0);
    expect(estimate("selective").source).toContain(rec.source);
    expect(estimate("selective").assumptions.join("; ")).toMatch(/selective checkpointing \(each block's attention output kept\)/);
  });

  it("falls back to full checkpointing where selective does not fit, and says so", () => {
    const s = resolveTrainSettings(flux(29), { steps: 2000 });
    expect(s).toMatchObject({ gradientCheckpointing: true, checkpointingMode: "full" });
    expect(modeChoice(flux(29))?.why).toMatch(/^full: selective checkpointing \(each block's attention output kept\) would need ~\d+(\.\d)? GB, over 29 GB/);
    expect(compileDiffusers(flux(29), { steps: 2000 }, PATHS).request.checkpointing_mode).toBe("full");
  });

  it("is off without checkpointing, full without a ceiling, and full for an arch it is not built for", () => {
    expect(resolveTrainSettings(flux(60), { steps: 2000 }).checkpointingMode).toBe("off");
    expect(modeChoice(flux(60))).toBeUndefined();
    const noCeiling = flux(undefined, { hardware: { kind: "local", gpu: "H200", price_per_hour: 3.5 } });
    expect(resolveTrainSettings(noCeiling, { steps: 2000 }).checkpointingMode).toBe("full");
    expect(modeChoice(noCeiling)?.why).toMatch(/^full: /);
    const sdxl = flux(8, { base: { model: "sdxl", quantize: "none" } });
    expect(resolveTrainSettings(sdxl, { steps: 2000 }).checkpointingMode).toBe("full");
    expect(modeChoice(sdxl)?.why).toMatch(/built for the worker arch flux1 only/);
    expect(BUILTIN_TRAINER.selectiveCheckpointingArches).toEqual(["flux1"]);
    const kohya = flux(45, { trainer: { name: "kohya", version: undefined } });
    expect(resolveTrainSettings(kohya, { steps: 2000 }).checkpointingMode).toBe("full");
  });
});

describe("compile cache folder (BUILTIN_TRAINER.compileCache)", () => {
  it("is sent under loraspec's cache folder when the run compiles or runs FA4 (its kernels are kept there too), and only then", () => {
    const compiled = compileDiffusers(flux(60), { steps: 2000 }, PATHS);
    expect(compiled.request.compile).toBe(true);
    expect(compiled.request.compile_cache_dir).toBe("/home/u/.cache/loraspec/compile");
    const short = compileDiffusers(flux(60), { steps: 20 }, PATHS);
    expect(short.request.compile).toBe(false);
    expect(short.request.attention).toBe("fa4");
    expect(short.request.compile_cache_dir).toBe("/home/u/.cache/loraspec/compile");
    const sdxl = compileDiffusers(flux(60, { base: { model: "sdxl", quantize: "none" } }), { steps: 20 }, PATHS);
    expect([sdxl.request.compile, sdxl.request.attention]).toEqual([false, "sdpa"]);
    expect(sdxl.request.compile_cache_dir).toBeUndefined();
    expect(compileDiffusers(flux(60), { steps: 2000 }, { datasetDir: "/d", outputDir: "/o" }).request.compile_cache_dir).toBeUndefined();
    // over steps and models: exactly when compile or FA4
    for (const model of ["sdxl", "flux1-dev", "flux2-klein-4b"])
      for (const steps of [20, 400, 2000]) {
        const r = compileDiffusers(flux(60, { base: { model, quantize: "none" } }), { steps }, PATHS).request;
        expect(r.compile_cache_dir !== undefined, `${model} ${steps}`).toBe(r.compile || r.attention === "fa4");
      }
  });
});
