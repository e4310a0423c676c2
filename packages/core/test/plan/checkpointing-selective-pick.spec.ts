import { describe, expect, it, vi } from "vitest";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { resolveTrainSettings } from "@loraspec/core/plan/train-settings.js";
import { CACHE_PATHS, fluxWithCeiling } from "./flux-ceiling-fixture.js";

/**
 * The plan's selective-checkpointing branch, with an activation figure that would make it worth
 * taking (the 20.5 B estimate of before the H200 measured 33.5 B, knowledge/vram.ts): the decision
 * logic stays tested although the measured figure never picks it (checkpointing-mode.spec.ts).
 */
vi.mock("@loraspec/core/knowledge/vram.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("@loraspec/core/knowledge/vram.js")>();
  return { ...real, VRAM_SELECTIVE_ACTIVATIONS: { flux1: { ...real.VRAM_SELECTIVE_ACTIVATIONS.flux1!, selective: 20.5, source: "test figure", verified: false } } };
});

const flux = fluxWithCeiling;
const PATHS = CACHE_PATHS;

describe("selective checkpointing where its activations fit and no checkpointing does not", () => {
  it("takes it under compile, marks an unverified figure, and sends it to the worker", () => {
    const s = resolveTrainSettings(flux(45), { steps: 2000 });
    expect(s).toMatchObject({ gradientCheckpointing: true, checkpointingMode: "selective", compile: true });
    const why = s.choices.find((x) => x.setting === "checkpointing_mode");
    expect(why?.why).toMatch(/^selective: .* fits 45 GB \(limits\.vram_ceiling_gb\)/);
    expect(why?.source).toMatch(/verified false/);
    expect(compileDiffusers(flux(45), { steps: 2000 }, PATHS).request.checkpointing_mode).toBe("selective");
  });

  it("never takes it without compile (slower than full recomputation there)", () => {
    // 20 steps do not repay the compile warm-up: no compile, so full checkpointing
    const s = resolveTrainSettings(flux(45), { steps: 20 });
    expect(s.compile).toBe(false);
    expect(s.checkpointingMode).toBe("full");
  });
});
