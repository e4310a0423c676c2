import { describe, expect, it } from "vitest";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { GPUS } from "@loraspec/core/knowledge/gpus.js";
import { describeLookup, FA4_SDPA_NOTE, LORA_FP32_NOTE, lookupTrainSpeed } from "@loraspec/core/plan/train-speed.js";
import type { TrainSettings } from "@loraspec/core/plan/train-settings.js";
import { loraBf16FromTwin, walltimeOn } from "@loraspec/core/plan/walltime.js";
import { contract } from "../lint/helpers.js";

/**
 * What a step figure stands in for travels as notes (plan/train-speed.ts SpeedLookup.notes), not as text to be cut
 * out again: the bf16-LoRA twin derivation (plan/walltime.ts loraBf16FromTwin) used to strip "LoRA computed in fp32
 * there" by a regex anchored at the end, and missed it when the FA4 fallback's note followed. Over every lever
 * combination of the built-in trainer's measured bases, on every card: a figure derived for the bf16 LoRA never also
 * says the row is fp32 unmeasured, and no note is said twice.
 */
const BASES = ["sdxl", "flux1-dev", "flux2-klein-4b", "flux2-klein-9b"] as const;
const bools = [false, true];
const cases = BASES.flatMap((base) =>
  bools.flatMap((compile) =>
    bools.flatMap((cudaGraphs) =>
      bools.flatMap((fp8Matmul) =>
        (["sdpa", "fa4"] as const).flatMap((attention) =>
          (["off", "full", "selective"] as const).map((ckpt) => [base, compile, cudaGraphs, fp8Matmul, attention, ckpt] as const),
        ),
      ),
    ),
  ),
);

describe("a step figure's notes, over the lever matrix", () => {
  it.each(cases)("%s compile %s graphs %s fp8mm %s %s ckpt %s", (base, compile, cudaGraphs, fp8Matmul, attention, ckpt) => {
    const c = contract({ base: { model: base, quantize: undefined }, trainer: { name: "diffusers", version: undefined }, hyperparameters: { steps: 1000 } });
    const settings: TrainSettings = {
      gradientCheckpointing: ckpt !== "off",
      checkpointingMode: ckpt,
      compile,
      cudaGraphs,
      quantize: "none",
      fp8Matmul,
      attention,
      channelsLast: base === "sdxl",
      loraCompute: "bf16",
      sampleMerge: "none",
      cudaKnown: true,
      choices: [],
    } as TrainSettings;
    for (const gpu of GPUS) {
      const config = walltimeOn(gpu, getBaseModel(base)!, c, 1024, 1000, settings).config ?? "";
      if (config.includes("for the LoRA in bf16")) expect(config, gpu.id).not.toContain(LORA_FP32_NOTE);
      for (const note of [LORA_FP32_NOTE, FA4_SDPA_NOTE]) expect(config.split(note).length - 1, `${gpu.id}: ${config}`).toBeLessThanOrEqual(1);
    }
  });
});

describe("the bf16 twin derivation keeps the other notes", () => {
  it("drops the fp32 note by identity, wherever it stands, and keeps the FA4 fallback's", () => {
    const onCard = { gradientCheckpointing: false, checkpointingMode: "off", compile: true, cudaGraphs: false, quantize: "none", fp8Matmul: true, attention: "sdpa", loraCompute: "bf16" } as TrainSettings;
    const fp32 = lookupTrainSpeed("flux1-dev", { ...onCard, loraCompute: "fp32" }, 1)!;
    // the row as lookupTrainSpeed hands it over after an FA4 fallback: the fp32 note first, the kernel's after it
    const notes = [LORA_FP32_NOTE, FA4_SDPA_NOTE];
    const speed = { ...fp32, row: fp32.config, notes, config: describeLookup(fp32.config, notes) };
    const derived = loraBf16FromTwin(getBaseModel("flux1-dev")!, onCard, speed)!;
    expect(derived.config).toContain("for the LoRA in bf16");
    expect(derived.config).not.toContain(LORA_FP32_NOTE);
    expect(derived.config).toContain(`(${FA4_SDPA_NOTE})`);
  });
});
