import { describe, expect, it } from "vitest";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { BUILTIN_TRAINER } from "@loraspec/core/knowledge/builtin-trainer.js";
import { VRAM_SELECTIVE_ACTIVATIONS } from "@loraspec/core/knowledge/vram.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { resolveTrainSettings } from "@loraspec/core/plan/train-settings.js";
import { contract, dataset } from "../lint/helpers.js";

/** Issue 22: checkpointing off | full | selective, decided in core with the reason shown; the compile cache folder in the request. */
const flux = (ceiling?: number, patch: Record<string, unknown> = {}) =>
  contract({
    trainer: { name: "diffusers", version: undefined },
    base: { model: "flux1-dev", quantize: "none" },
    hardware: { kind: "local", gpu: "H200", vram_gb: 141, price_per_hour: 3.5 },
    limits: { vram_ceiling_gb: ceiling, max_cost_usd: undefined },
    hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250, optimizer: "adamw" },
    ...patch,
  } as never);
const PATHS = { datasetDir: "/p/dataset", outputDir: "/p/out", cacheDir: "/home/u/.cache/loraspec" };
const modeChoice = (c: ReturnType<typeof flux>) => resolveTrainSettings(c, { steps: 2000 }).choices.find((x) => x.setting === "checkpointing_mode");

describe("checkpointing mode (plan/train-settings.ts)", () => {
  it("takes selective checkpointing for FLUX.1 where it fits and no checkpointing does not, marked as an estimate", () => {
    const plan = planRun(flux(45), dataset(20));
    expect(plan.trainSettings).toMatchObject({ gradientCheckpointing: true, checkpointingMode: "selective", quantize: "none" });
    expect(plan.vram.totalGb).toBeLessThanOrEqual(45);
    expect(plan.vram.assumptions.join("; ")).toMatch(/selective checkpointing \(estimate until measured\)/);
    expect(modeChoice(flux(45))?.why).toMatch(/^selective: .* \(an estimate until measured\) fits 45 GB \(limits\.vram_ceiling_gb\)/);
    expect(modeChoice(flux(45))?.source).toMatch(/verified false/);
    expect(compileDiffusers(flux(45), { steps: 2000 }, PATHS).request.checkpointing_mode).toBe("selective");
  });

  it("keeps its activation estimate between full checkpointing and none (sourced, unverified)", () => {
    const rec = VRAM_SELECTIVE_ACTIVATIONS.flux1!;
    expect(rec.ckpt).toBeLessThan(rec.selective);
    expect(rec.selective).toBeLessThan(rec.noCkpt);
    expect(rec.verified).toBe(false);
    const full = planRun(flux(30), dataset(20)).vram.totalGb;
    const selective = planRun(flux(45), dataset(20)).vram.totalGb;
    const none = planRun(flux(60), dataset(20)).vram.totalGb;
    expect(full < selective && selective < none).toBe(true);
  });

  it("falls back to full checkpointing where selective does not fit, and says so", () => {
    const s = resolveTrainSettings(flux(30), { steps: 2000 });
    expect(s).toMatchObject({ gradientCheckpointing: true, checkpointingMode: "full" });
    expect(modeChoice(flux(30))?.why).toMatch(/^full: selective checkpointing would need ~\d+(\.\d)? GB \(estimate\), over 30 GB/);
    expect(compileDiffusers(flux(30), { steps: 2000 }, PATHS).request.checkpointing_mode).toBe("full");
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
  it("is sent under loraspec's cache folder when the run compiles, and only then", () => {
    const compiled = compileDiffusers(flux(60), { steps: 2000 }, PATHS);
    expect(compiled.request.compile).toBe(true);
    expect(compiled.request.compile_cache_dir).toBe("/home/u/.cache/loraspec/compile");
    const short = compileDiffusers(flux(60), { steps: 20 }, PATHS);
    expect(short.request.compile).toBe(false);
    expect(short.request.compile_cache_dir).toBeUndefined();
    expect(compileDiffusers(flux(60), { steps: 2000 }, { datasetDir: "/d", outputDir: "/o" }).request.compile_cache_dir).toBeUndefined();
  });
});
