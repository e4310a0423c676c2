import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { GPUS } from "@loraspec/core/knowledge/gpus.js";
import { NETWORK_TYPE_COSTS, adapterParamsFactor, lokrSplit } from "@loraspec/core/knowledge/network-type-cost.js";
import { denseDeltaGb } from "@loraspec/core/plan/network-cost.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { estimateVramWith } from "@loraspec/core/plan/vram-model.js";
import { walltimeOn } from "@loraspec/core/plan/walltime.js";
import type { TrainSettings } from "@loraspec/core/plan/train-settings.js";
import { contract } from "../lint/helpers.js";

const python = fileURLToPath(new URL("../../../../worker/.venv/bin/python", import.meta.url));
const h200 = GPUS.find((g) => g.id === "h200")!;
const settings: TrainSettings = { gradientCheckpointing: false, compile: false, cudaGraphs: false, quantize: "none", fp8Matmul: false, channelsLast: false, cudaKnown: true, choices: [] };
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

  it("LoRA keeps the measured rows; the others move the step time and the adapter memory, said as an estimate with why", () => {
    const lora = walltimeOn(h200, flux, withNetwork({}), 1024, 1000, settings);
    for (const type of ["dora", "lokr", "loha"] as const) {
      const c = withNetwork({ type });
      const plan = planRun(c);
      const w = walltimeOn(h200, flux, c, 1024, 1000, settings);
      expect(plan.networkCost.measured).toBe(false);
      expect(w.secondsPerStep / lora.secondsPerStep).toBeCloseTo(plan.networkCost.stepTimeFactor, 2);
      expect(plan.networkCost.stepTimeFactor).toBeGreaterThan(1);
      expect(w.config).toContain(`network.type ${type} (sourced estimate)`);
      expect(w.basis).not.toBe("measured");
      expect(plan.networkCost.label).toMatch(/sourced estimate until bench\/gpu-speed\.py --networks/);
      expect(plan.vram.assumptions.join("\n")).toContain(`${type} (x`);
    }
    expect(planRun(withNetwork({})).networkCost).toMatchObject({ type: "lora", stepTimeFactor: 1, paramsFactor: 1, measured: true });
    expect(NETWORK_TYPE_COSTS.lora.measured).toBe(true);
  });

  it("LoKr/LoHa's dense ΔW: every adapted weight without checkpointing, one block's with it; wider targets cost more", () => {
    const lokr = withNetwork({ type: "lokr" });
    const all = denseDeltaGb(lokr, flux, false);
    // FLUX.1's attention projections: ~a quarter of its 11.9B weights, fp32.
    expect(all).toBeCloseTo((11.9e9 * 0.25 * 4) / 1e9, 1);
    expect(denseDeltaGb(lokr, flux, true)).toBeCloseTo(all / flux.blocks, 3);
    expect(denseDeltaGb(withNetwork({ type: "dora" }), flux, false)).toBe(0);
    const vram = estimateVramWith(lokr, flux, 1024, settings);
    expect(vram.assumptions.some((a) => a.includes("dense ΔW") && a.includes("every adapted module's"))).toBe(true);
    // LoKr's own factors are tiny (x0.044 of LoRA's params at FLUX.1's width): its adapter memory is the ΔW.
    expect(vram.parts.lora).toBeGreaterThan(all - 0.1);
    expect(vram.parts.lora).toBeLessThan(all + 0.2);
    const narrow = planRun(withNetwork({ type: "lokr" })).networkCost.stepTimeFactor;
    const wide = planRun(withNetwork({ type: "lokr", targets: "all-linear" })).networkCost.stepTimeFactor;
    expect(wide).toBeGreaterThan(narrow);
    expect(planRun(withNetwork({ type: "dora" })).vram.assumptions.some((a) => a.includes("dense ΔW"))).toBe(false);
  });
});
