import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { GPUS } from "@loraspec/core/knowledge/gpus.js";
import { NETWORK_BENCH, adapterParamsFactor, lokrSplit } from "@loraspec/core/knowledge/network-type-cost.js";
import { measuredExtraGib, networkMemoryGb } from "@loraspec/core/plan/network-cost.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { estimateVramWith } from "@loraspec/core/plan/vram-model.js";
import { walltimeOn } from "@loraspec/core/plan/walltime.js";
import type { TrainSettings } from "@loraspec/core/plan/train-settings.js";
import { contract } from "../lint/helpers.js";

const python = fileURLToPath(new URL("../../../../worker/.venv/bin/python", import.meta.url));
const h200 = GPUS.find((g) => g.id === "h200")!;
const settings: TrainSettings = { gradientCheckpointing: false, compile: false, cudaGraphs: false, quantize: "none", fp8Matmul: false, attention: "sdpa", loraCompute: "fp32", sampleMerge: "none", channelsLast: false, cudaKnown: true, choices: [] };
const flux = getBaseModel("flux1-dev")!;

function withNetwork(network: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return contract({ base: { model: "flux1-dev" }, trainer: { name: "diffusers" }, network, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 }, ...extra });
}

describe("network.type's cost over LoRA in the plan (DoRA, LoKr, LoHa)", () => {
  it("splits a dimension for LoKr as peft and LyCORIS do (peft factorization's documented examples)", () => {
    expect([lokrSplit(256, -1), lokrSplit(128, -1), lokrSplit(127, -1), lokrSplit(128, 4), lokrSplit(3072, -1)]).toEqual([[16, 16], [8, 16], [1, 127], [4, 32], [48, 64]]);
  });

  it.skipIf(!existsSync(python))("adapter parameter factors match peft's own adapters on a square layer (the worker's pin)", () => {
    const code = [
      "import json, torch",
      "torch.set_num_threads(1)",
      "from peft import LoraConfig, LoKrConfig, LoHaConfig, inject_adapter_in_model",
      "out = {}",
      "for d in (1280, 3072):",
      "    for kind, cfg in (('lora', LoraConfig(r=16, target_modules=['l'])), ('dora', LoraConfig(r=16, target_modules=['l'], use_dora=True)),",
      "                      ('lokr', LoKrConfig(r=16, target_modules=['l'], decompose_factor=-1)), ('loha', LoHaConfig(r=16, target_modules=['l']))):",
      "        m = torch.nn.Module(); m.l = torch.nn.Linear(d, d, bias=False, device='meta')",
      "        m = inject_adapter_in_model(cfg, m, low_cpu_mem_usage=True)",
      "        out[f'{kind}{d}'] = sum(p.numel() for n, p in m.named_parameters() if 'base_layer' not in n and n != 'l.weight')",
      "print(json.dumps(out))",
    ].join("\n");
    const counts = JSON.parse(execFileSync(python, ["-c", code], { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1" } })) as Record<string, number>;
    for (const d of [1280, 3072]) {
      for (const kind of ["dora", "lokr", "loha"] as const) {
        expect(adapterParamsFactor(kind, 16, d, -1), `${kind} at ${d}`).toBeCloseTo(counts[`${kind}${d}`]! / counts[`lora${d}`]!, 6);
      }
    }
  });

  it("LoRA keeps the rows; the others move the step time by the measured ratio and say so (no longer an estimate)", () => {
    const lora = walltimeOn(h200, flux, withNetwork({}), 1024, 1000, settings);
    for (const type of ["dora", "lokr", "loha"] as const) {
      const c = withNetwork({ type });
      const plan = planRun(c);
      const w = walltimeOn(h200, flux, c, 1024, 1000, settings);
      const rows = NETWORK_BENCH.rows.flux1;
      expect(plan.networkCost.measured).toBe(true);
      // FLUX.1 [dev] on the attention preset (the rows' own): the H200 ratio itself.
      expect(plan.networkCost.stepTimeFactor).toBeCloseTo(rows[type].secondsPerStep / rows.lora.secondsPerStep, 2);
      expect(w.secondsPerStep / lora.secondsPerStep).toBeCloseTo(plan.networkCost.stepTimeFactor, 2);
      expect(w.config).toContain(`network.type ${type} (measured)`);
      expect(w.basis).not.toBe("measured");
      expect(plan.networkCost.label).toContain("measured on an H200 2026-12-02: FLUX.1 eager attention");
      expect(plan.networkCost.label).not.toMatch(/estimate/);
      expect(plan.networkCost.source).toContain("bench/data/gpu-speed-h200-2026-12-02-networks.jsonl");
      expect(plan.vram.assumptions.join("\n")).toContain(`${type} (x`);
      expect(plan.vram.assumptions.join("\n")).not.toMatch(/estimate/);
    }
    expect(planRun(withNetwork({})).networkCost).toMatchObject({ type: "lora", stepTimeFactor: 1, paramsFactor: 1, measured: true });
  });

  it("SDXL takes its own rows (DoRA x2.24: its eager step is launch-bound), other transformers FLUX.1's, said as derived", () => {
    const sdxl = contract({ base: { model: "sdxl" }, trainer: { name: "diffusers" }, network: { type: "dora" }, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 } });
    expect(planRun(sdxl).networkCost.stepTimeFactor).toBeCloseTo(2.24, 2);
    expect(planRun(sdxl).networkCost.label).toContain("SDXL eager attention x 2.24");
    const klein = contract({ base: { model: "flux2-klein-4b" }, trainer: { name: "diffusers" }, network: { type: "lokr" }, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 } });
    const cost = planRun(klein).networkCost;
    expect(cost.stepTimeFactor).toBeCloseTo(1.38, 2);
    expect(cost.label).toContain("FLUX.1's rows for");
  });

  it("wider presets scale the measured extra: by the adapted work on a GPU-bound transformer, by the module count on SDXL's launch-bound step", () => {
    for (const type of ["dora", "lokr", "loha"] as const) {
      const rows = NETWORK_BENCH.rows.flux1;
      const extra = rows[type].secondsPerStep / rows.lora.secondsPerStep - 1;
      const wide = planRun(withNetwork({ type, targets: "all-linear" })).networkCost;
      expect(wide.stepTimeFactor).toBeCloseTo(1 + extra * (0.8 / 0.25), 2);
      expect(wide.label).toContain("all-linear: the extra x 3.20");
      const s = NETWORK_BENCH.rows.sdxl;
      const sdxl = contract({ base: { model: "sdxl" }, trainer: { name: "diffusers" }, network: { type, targets: "all-linear" }, hyperparameters: { learning_rate: 1e-4, steps: 1000, save_every: 250 } });
      expect(planRun(sdxl).networkCost.stepTimeFactor).toBeCloseTo(1 + (s[type].secondsPerStep / s.lora.secondsPerStep - 1) * (722 / 560), 2);
    }
  });

  it("the VRAM holds the measured extras: FLUX.1's rows come back exactly, scaled by tokens (DoRA) or adapted weights (LoKr/LoHa), one block's with checkpointing", () => {
    const gb = 1024 ** 3 / 1e9;
    const tokens = flux.tokensAtNative;
    for (const type of ["dora", "lokr", "loha"] as const) {
      const measured = measuredExtraGib(type, "flux1") * gb;
      const at1024 = networkMemoryGb(withNetwork({ type }), flux, tokens, false)!;
      expect(at1024.gb).toBeCloseTo(measured, 6);
      expect(at1024.assumption).toContain("measured +");
      expect(networkMemoryGb(withNetwork({ type }), flux, tokens, true)!.gb).toBeCloseTo(measured / flux.blocks, 6);
      const batch2 = networkMemoryGb(withNetwork({ type }), flux, 2 * tokens, false)!.gb;
      // DoRA's saved outputs follow the tokens; LoKr/LoHa's ΔW is one per module, whatever the batch.
      expect(batch2).toBeCloseTo(type === "dora" ? 2 * measured : measured, 6);
      const wide = networkMemoryGb(withNetwork({ type, targets: "all-linear" }), flux, tokens, false)!.gb;
      expect(wide).toBeCloseTo(measured * (type === "dora" ? 2.5 : 3.2), 6);
    }
    expect(networkMemoryGb(withNetwork({}), flux, tokens, false)).toBeUndefined();
    // DoRA on FLUX.1 at 1024², no checkpointing: +15.1 GiB over LoRA, as measured (the old estimate had none).
    const dora = estimateVramWith(withNetwork({ type: "dora" }), flux, 1024, settings);
    const plain = estimateVramWith(withNetwork({}), flux, 1024, settings);
    expect(dora.parts.lora - plain.parts.lora).toBeGreaterThan(15.07 * gb - 0.2);
    expect(dora.assumptions.some((a) => a.includes("base output (bf16) and the LoRA output (fp32)"))).toBe(true);
    // LoKr's own factors are tiny (x0.044 of LoRA's params at FLUX.1's width): its adapter memory is the ΔW.
    const lokr = estimateVramWith(withNetwork({ type: "lokr" }), flux, 1024, settings);
    const delta = measuredExtraGib("lokr", "flux1") * gb;
    expect(lokr.parts.lora).toBeGreaterThan(delta - 0.1);
    expect(lokr.parts.lora).toBeLessThan(delta + 0.2);
    expect(lokr.assumptions.some((a) => a.includes("fp32 ΔW"))).toBe(true);
    expect(plain.assumptions.some((a) => a.includes("kept for the backward"))).toBe(false);
  });
});
