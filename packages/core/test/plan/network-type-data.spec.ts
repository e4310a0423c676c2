import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { NETWORK_BENCH, NETWORK_TYPE_COSTS } from "@loraspec/core/knowledge/network-type-cost.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { measuredExtraGib } from "@loraspec/core/plan/network-cost.js";

/**
 * knowledge/network-type-cost.ts is the browser-safe copy of the bench file its source names (what
 * bench/gpu-speed.py --networks wrote on the H200): every row must be a line of it, to the digits shown.
 */
const root = fileURLToPath(new URL("../../../../", import.meta.url));
type Line = { card?: string; torch?: string; model?: string; config?: string; network_type?: string; targets?: string; batch?: number; gradient_checkpointing?: boolean; levers?: string[]; lora_modules?: number; s_per_step?: number; peak_alloc_gib?: number; weights_and_lora_state_gib?: number; peak_minus_lora_gib?: number };
const file = /bench\/data\/\S+\.jsonl/.exec(NETWORK_BENCH.source)![0];
const lines = readFileSync(`${root}${file}`, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Line);
const round = (x: number | undefined, digits: number) => (x === undefined ? undefined : Number(x.toFixed(digits)));
const GIB = 1024 ** 3;
const cases = (Object.keys(NETWORK_BENCH.rows) as (keyof typeof NETWORK_BENCH.rows)[]).flatMap((family) =>
  (Object.keys(NETWORK_BENCH.rows[family]) as (keyof (typeof NETWORK_BENCH.rows)["sdxl"])[]).map((type) => [`${family} ${type}`, family, type] as const),
);

describe("knowledge/network-type-cost.ts agrees with bench/data", () => {
  it.each(cases)("%s", (_, family, type) => {
    const same = lines.filter((l) => l.model === family && l.network_type === type);
    expect(same).toHaveLength(1);
    const line = same[0]!;
    // The rows the plan's ratios stand for: eager, attention preset, batch 1, no checkpointing, no levers.
    expect([line.config, line.targets, line.batch, line.gradient_checkpointing, line.levers]).toEqual([type === "lora" ? "eager" : `eager [${type}]`, "attention", 1, false, []]);
    expect(line.lora_modules).toBe(NETWORK_BENCH.modules[family]);
    const row = NETWORK_BENCH.rows[family][type];
    expect({ s: round(line.s_per_step, 3), peak: round(line.peak_alloc_gib, 2), state: round(line.weights_and_lora_state_gib, 2) }).toEqual({ s: row.secondsPerStep, peak: row.peakAllocGib, state: row.stateGib });
    if (type !== "lora") expect(row.peakAllocGib - NETWORK_BENCH.rows[family].lora.peakAllocGib).toBeCloseTo(line.peak_minus_lora_gib!, 1);
  });

  it("names the card, the torch and the date of the file; every adapter kind is measured", () => {
    expect(lines[0]).toMatchObject({ card: "NVIDIA H200", torch: "2.11.0+cu130" });
    expect(NETWORK_BENCH.source).toContain("H200");
    expect(NETWORK_BENCH.source).toContain(lines[0]!.torch!);
    expect(file).toContain(NETWORK_BENCH.asOf);
    for (const rec of Object.values(NETWORK_TYPE_COSTS)) expect(rec.measured).toBe(true);
    for (const type of ["dora", "lokr", "loha"] as const) expect(NETWORK_TYPE_COSTS[type].source).toContain(file);
  });

  it("the memory model's reasons account for the measured extras (counted from the architectures)", () => {
    // DoRA keeps base_result (bf16, 2 B) and lora_result (fp32, 4 B) per token x output feature of each adapted module.
    // FLUX.1, attention: 19 double blocks x 4 + 38 single x 3 projections of 3,072 outputs, every one over 4,608 tokens (image + text streams).
    const fluxOutputs = (19 * 4 + 38 * 3) * 4608 * 3072;
    // SDXL, attention at 1024²: 10 transformer blocks at 640 wide over 4,096 tokens, 60 at 1,280 over 1,024; per block
    // attn1 q, k, v, out and attn2 q, out over the image tokens, attn2 k, v over 77 text tokens.
    const sdxlOutputs = 10 * 640 * (6 * 4096 + 2 * 77) + 60 * 1280 * (6 * 1024 + 2 * 77);
    expect((fluxOutputs * 6) / GIB / measuredExtraGib("dora", "flux1")).toBeCloseTo(1, 1);
    expect((sdxlOutputs * 6) / GIB / measuredExtraGib("dora", "sdxl")).toBeCloseTo(1, 1);
    // LoKr/LoHa keep a full-size fp32 ΔW per adapted module: FLUX.1's 266 projections are 3,072 x 3,072.
    const fluxDelta = (266 * 3072 * 3072 * 4) / GIB;
    for (const type of ["lokr", "loha"] as const) expect(measuredExtraGib(type, "flux1") / fluxDelta, type).toBeGreaterThan(0.9);
    for (const type of ["lokr", "loha"] as const) expect(measuredExtraGib(type, "flux1") / fluxDelta, type).toBeLessThan(1.02);
    // The scale's reference shapes are the rows' own (1024², native).
    expect(getBaseModel(NETWORK_BENCH.base.flux1)!.tokensAtNative).toBe(4608);
    expect(getBaseModel(NETWORK_BENCH.base.sdxl)!.nativeResolution).toBe(1024);
  });
});
