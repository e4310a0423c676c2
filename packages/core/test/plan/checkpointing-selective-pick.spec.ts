import { describe, expect, it } from "vitest";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { BUILTIN_TRAINER } from "@loraspec/core/knowledge/builtin-trainer.js";
import { TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4 } from "@loraspec/core/knowledge/train-speed.js";
import { resolveTrainSettings } from "@loraspec/core/plan/train-settings.js";
import { lookupTrainSpeed } from "@loraspec/core/plan/train-speed.js";
import { estimateVramWith, type VramSettings } from "@loraspec/core/plan/vram-model.js";
import { CACHE_PATHS, fluxWithCeiling } from "./flux-ceiling-fixture.js";

/**
 * Issue 22: checkpointing_mode selective is the attention-only policy (BUILTIN_TRAINER.selectiveCheckpointingKeep),
 * measured on the H200 on 2026-12-06 at 0.345 s/step and 26.2 GiB against full checkpointing's 0.465 and 24.7. The plan
 * takes it where its peak fits the VRAM ceiling and a measured row of the configuration has it faster than full.
 */
const flux = fluxWithCeiling;
const model = getBaseModel("flux1-dev")!;
/** What the plan resolves for FLUX.1 on the H200 at 2,000 steps with checkpointing: compile, fp8 GEMMs, FA4, the LoRA in bf16. */
const H200: Omit<VramSettings, "gradientCheckpointing" | "checkpointingMode"> = { compile: true, cudaGraphs: false, quantize: "none", fp8Matmul: true, attention: "fa4", loraCompute: "bf16" };
const peak = (mode: "off" | "full" | "selective") => estimateVramWith(flux(141), model, 1024, { ...H200, gradientCheckpointing: mode !== "off", checkpointingMode: mode }).totalGb;
const [off, full, selective] = [peak("off"), peak("full"), peak("selective")];
const mid = (a: number, b: number) => Math.round(((a + b) / 2) * 10) / 10;
const modeChoice = (c: ReturnType<typeof flux>, steps = 2000) => resolveTrainSettings(c, { steps }).choices.find((x) => x.setting === "checkpointing_mode");

describe("selective checkpointing (attention outputs kept) where it fits and is measured faster", () => {
  it("the estimates order as measured: full < selective < none, selective ~1.6 GB over full", () => {
    expect(full).toBeLessThan(selective);
    expect(selective).toBeLessThan(off);
    expect(selective - full).toBeGreaterThan(1);
    expect(selective - full).toBeLessThan(2.5);
    expect(BUILTIN_TRAINER.selectiveCheckpointingKeep).toBe("attention");
  });

  // ceiling -> the mode the plan runs, and the reason it shows
  const table: [string, number, "off" | "full" | "selective", RegExp | undefined][] = [
    ["between full and selective", mid(full, selective), "full", /^full: selective checkpointing \(each block's attention output kept\) would need ~[\d.]+ GB, over [\d.]+ GB \(limits\.vram_ceiling_gb\)$/],
    ["just above selective", selective + 0.1, "selective", /^selective: each block's attention output kept, every matmul recomputed: ~[\d.]+ GB fits [\d.]+ GB \(limits\.vram_ceiling_gb\); 0\.35 vs 0\.47 s\/step on the H200 with full checkpointing \(~[\d.]+ GB\)/],
    ["between selective and none", mid(selective, off), "selective", /^selective: /],
    ["above no checkpointing", off + 1, "off", undefined],
  ];
  it.each(table)("FLUX.1 at a ceiling %s (%s GB): %s", (_name, ceiling, mode, why) => {
    const c = flux(ceiling);
    const s = resolveTrainSettings(c, { steps: 2000 });
    expect(s.checkpointingMode).toBe(mode);
    const choice = modeChoice(c);
    if (why) expect(choice?.why).toMatch(why);
    else expect(choice).toBeUndefined();
    if (mode === "selective") {
      expect(s).toMatchObject({ gradientCheckpointing: true, ...H200 });
      expect(choice?.source).toContain(TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4.split(", ")[1]);
    }
    const request = compileDiffusers(c, { steps: 2000 }, CACHE_PATHS).request;
    expect(request.gradient_checkpointing).toBe(mode !== "off");
    expect(request.checkpointing_mode).toBe(mode === "selective" ? "selective" : "full");
  });

  it("times the selective plan by the 2026-12-06 row (0.345 s/step), full by its twin in the same run (0.465)", () => {
    const at = (mode: "full" | "selective") => lookupTrainSpeed("flux1-dev", { ...H200, gradientCheckpointing: true, checkpointingMode: mode }, 1)!;
    expect([at("selective").secondsPerStep, at("selective").basis, at("selective").source]).toEqual([0.345, "measured", TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4]);
    expect([at("full").secondsPerStep, at("full").source]).toEqual([0.465, TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4]);
  });

  // Where no measured row has it faster, full, though selective fits: the reason names the configuration.
  it.each([
    ["without compile (20 steps do not repay the warm-up)", flux(mid(selective, off)), 20, /no compile/],
    ["on an A100 (torch's attention kernel, no fp8 GEMMs)", flux(mid(selective, off), { hardware: { kind: "local", gpu: "A100", vram_gb: 80, price_per_hour: 2 } }), 2000, /fp8 GEMMs off, sdpa attention/],
  ] as const)("not where it is not measured faster: %s", (_name, c, steps, config) => {
    const s = resolveTrainSettings(c, { steps });
    expect(s.checkpointingMode).toBe("full");
    expect(modeChoice(c, steps)?.why).toMatch(/^full: selective checkpointing is not measured in this configuration \(/);
    expect(modeChoice(c, steps)?.why).toMatch(config);
    expect(compileDiffusers(c, { steps }, CACHE_PATHS).request.checkpointing_mode).toBe("full");
  });
});
