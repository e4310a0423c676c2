import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { ModuleSpec } from "@loraspec/core/lora/architectures.js";
import { LORA_TARGETS, matchesPattern } from "@loraspec/core/knowledge/lora-targets.js";
import { inspectLora } from "@loraspec/engine/lora/inspect-lora.js";
import { buildLora, tempDir } from "./helpers.js";

/** inspect names the network.targets preset a file trains (knowledge/lora-targets.ts) and its share of the blocks. */
describe("inspect reports target coverage", () => {
  const inspect = async (arch: "sdxl" | "flux1", format: "kohya" | "diffusers", pick: (m: ModuleSpec) => boolean) => {
    const p = join(await tempDir(), "t.safetensors");
    await buildLora({ path: p, arch, format, pick, rank: 1 });
    return (await inspectLora({ path: p, scanValues: false })).targets;
  };
  const unet = (m: ModuleSpec) => m.component === "unet" && m.shape.length === 2;

  it("Kohya's SDXL set reads all-linear, 722 of 722", async () => {
    const t = await inspect("sdxl", "kohya", (m) => unet(m) && /attentions\.\d+\./.test(m.parts[0]!.name));
    expect(t).toMatchObject({ preset: "all-linear", covered: 722, blockModules: 722, outside: 0, presets: { attention: 560, "attention-mlp": 700, "all-linear": 722 } });
  });

  it("the built-in trainer's SDXL default reads attention; Kohya's fused FLUX.1 file reads all-linear (494 diffusers modules)", async () => {
    const att = await inspect("sdxl", "diffusers", (m) => unet(m) && matchesPattern(m.parts[0]!.name, LORA_TARGETS.sdxl.presets.attention));
    expect(att).toMatchObject({ preset: "attention", covered: 560, blockModules: 722 });
    const kohya = await inspect("flux1", "kohya", (m) => m.component === "transformer" && /^(double|single)_blocks\./.test(m.native));
    expect(kohya).toMatchObject({ preset: "all-linear", covered: 494, outside: 0 });
  });

  it("anything else is custom, with what lies outside the blocks counted", async () => {
    const t = await inspect("sdxl", "diffusers", (m) => unet(m) && (/attn1\.to_q$/.test(m.parts[0]!.name) || m.parts[0]!.name.startsWith("time_embedding")));
    expect(t).toMatchObject({ preset: "custom", covered: 70, outside: 2 });
  });
});
