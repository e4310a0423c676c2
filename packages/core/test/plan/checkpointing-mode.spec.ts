import { describe, expect, it } from "vitest";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { BUILTIN_TRAINER } from "@loraspec/core/knowledge/builtin-trainer.js";
import { VRAM_SELECTIVE_ACTIVATIONS } from "@loraspec/core/knowledge/vram.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { resolveTrainSettings } from "@loraspec/core/plan/train-settings.js";
import { dataset } from "../lint/helpers.js";
import { CACHE_PATHS, fluxWithCeiling } from "./flux-ceiling-fixture.js";

/** Issue 22: checkpointing off | full | selective, decided in core with the reason shown; the compile cache folder in the request. */
const flux = fluxWithCeiling;
const PATHS = CACHE_PATHS;
const modeChoice = (c: ReturnType<typeof flux>) => resolveTrainSettings(c, { steps: 2000 }).choices.find((x) => x.setting === "checkpointing_mode");

describe("checkpointing mode (plan/train-settings.ts)", () => {
  it("never takes selective checkpointing for FLUX.1 as measured: it keeps ~95% of the activations, so no checkpointing fits wherever it does", () => {
    // H200, 2026-12-02 (bench/gpu-speed.py rows 23-25): 33.5 B per token x hidden x block against 35.4 without
    // checkpointing; the compiled run without checkpointing (44.6 GiB) even peaks below the selective one (47.2 GiB).
    for (let ceiling = 10; ceiling <= 141; ceiling += 1) {
      expect(resolveTrainSettings(flux(ceiling), { steps: 2000 }).checkpointingMode, `ceiling ${ceiling} GB`).not.toBe("selective");
    }
    expect(modeChoice(flux(45))?.why).toMatch(/^full: selective checkpointing would need ~\d+(\.\d)? GB, over 45 GB \(limits\.vram_ceiling_gb\)/);
    expect(modeChoice(flux(45))?.source).toMatch(/gpu-speed-h200-2026-12-02-selective\.jsonl/);
    expect(modeChoice(flux(45))?.source).not.toMatch(/verified false/);
  });

  it("keeps its measured activation figure between full checkpointing and none", () => {
    const rec = VRAM_SELECTIVE_ACTIVATIONS.flux1!;
    expect(rec.ckpt).toBeLessThan(rec.selective);
    expect(rec.selective).toBeLessThan(rec.noCkpt);
    expect(rec.verified).not.toBe(false);
  });

  it("falls back to full checkpointing where selective does not fit, and says so", () => {
    const s = resolveTrainSettings(flux(30), { steps: 2000 });
    expect(s).toMatchObject({ gradientCheckpointing: true, checkpointingMode: "full" });
    expect(modeChoice(flux(30))?.why).toMatch(/^full: selective checkpointing would need ~\d+(\.\d)? GB, over 30 GB/);
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
