import { describe, expect, it } from "vitest";
import { ContractSchema } from "@loraspec/core/contract/schema.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { CUDA_CONTEXT, TRAIN_SPEEDS } from "@loraspec/core/knowledge/train-speed.js";
import { estimateVramWith } from "@loraspec/core/plan/vram-model.js";

const GIB = 2 ** 30;
/** Issue #9: the estimate within 15% of the measured peak for every measured configuration. */
const TOLERANCE = 0.15;

const measured = TRAIN_SPEEDS.filter((r) => r.peakAllocGib !== undefined);

describe("estimateVram against the built-in trainer's H200 measurements (knowledge/train-speed.ts)", () => {
  it("has the measured rows of every model of the bench", () => {
    expect(new Set(measured.map((r) => r.base))).toEqual(new Set(["sdxl", "flux1-dev", "flux2-klein-4b", "flux2-klein-9b"]));
  });

  it.each(measured.map((r) => [`${r.base} ${r.config} b${r.batch}${r.gradientCheckpointing ? " ckpt" : ""}`, r] as const))("%s", (_name, r) => {
    const model = getBaseModel(r.base);
    if (!model) throw new Error(`no base model ${r.base}`);
    const contract = ContractSchema.parse({
      version: 1,
      name: "bench",
      base: { model: r.base, quantize: r.quantize },
      trainer: { name: "diffusers" },
      hardware: { kind: "local", gpu: "H200" },
      target: "character",
      dataset: { path: "./d", resolution: r.resolution },
      trigger: { word: "txcl" },
      hyperparameters: { rank: 16, optimizer: "adamw", batch_size: r.batch, gradient_checkpointing: r.gradientCheckpointing, cache_latents: true, cache_text_encoder_outputs: true },
    });
    const settings = {
      gradientCheckpointing: r.gradientCheckpointing,
      checkpointingMode: r.checkpointingMode ?? (r.gradientCheckpointing ? ("full" as const) : ("off" as const)),
      compile: r.levers.includes("compile"),
      cudaGraphs: r.levers.includes("graphs"),
      quantize: r.quantize,
    };
    const estimateGb = estimateVramWith(contract, model, r.resolution, settings).totalGb;
    // The card holds the allocated peak plus the CUDA context; the estimate is in GB (1e9 bytes).
    const measuredGb = (((r.peakAllocGib ?? 0) + CUDA_CONTEXT.gib) * GIB) / 1e9;
    expect(Math.abs(estimateGb / measuredGb - 1)).toBeLessThanOrEqual(TOLERANCE);
  });
});
