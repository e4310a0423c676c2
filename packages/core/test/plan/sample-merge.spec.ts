import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { BUILTIN_TRAINER, WORKER_ARCHES } from "@loraspec/core/knowledge/builtin-trainer.js";
import { sampleMergeKind } from "@loraspec/core/plan/sample-merge.js";
import { contract } from "../lint/helpers.js";

/**
 * Core is the one home of the in-training sample merge (plan/sample-merge.ts): the plan decides it with its reason,
 * the compiled request carries it as sample_merge, and the worker builds the variant the request names
 * (train/sample_merge.py make; worker/tests/test_sync.py: a variant for exactly the schema's values).
 */
const MODELS = ["sdxl", "flux1-dev", "flux2-klein-4b", "zimage-turbo", "qwen-image"] as const;
// H200 long (compile and fp8 GEMMs where measured), H200 short (no compile, so no fp8 GEMMs), no GPU named, a 4090.
const HARDWARE = [
  [2000, "H200"],
  [50, "H200"],
  [2000, undefined],
  [3000, "RTX 4090"],
] as const;

function compiled(model: string, type: string, quantize: string, steps: number, gpu: string | undefined, every = 250) {
  const c = contract({
    trainer: { name: "diffusers" },
    base: { model, quantize },
    hardware: { kind: "local", gpu, vram_gb: 141 },
    limits: { vram_ceiling_gb: undefined, max_cost_usd: undefined },
    hyperparameters: { learning_rate: 1e-4, steps, save_every: 250 },
    network: { type },
    samples: { every },
  } as never);
  return compileDiffusers(c, { steps, learningRate: 1e-4, resolution: 1024 }, { datasetDir: "/d", outputDir: "/o" });
}

describe("the sample merge: core decides, the request carries it", () => {
  it("the rule over every arch, network type, quantize and fp8_matmul", () => {
    const kinds = WORKER_ARCHES.flatMap((arch) =>
      BUILTIN_TRAINER.networkTypes.flatMap((type) =>
        ["none", "fp8"].flatMap((quantize) =>
          [false, true].flatMap((fp8Matmul) =>
            [false, true].map((compile) => [`${arch} ${type} ${quantize}${fp8Matmul ? " fp8mm" : ""}${compile ? " compile" : ""}`, sampleMergeKind(arch, type, { quantize, fp8Matmul, compile })]),
          ),
        ),
      ),
    );
    const merged = Object.fromEntries(kinds.filter(([, k]) => k !== "none"));
    expect(merged).toEqual({
      "sdxl lora none": "buffers",
      "sdxl lora none compile": "buffers",
      "flux1 lora none": "per_call",
      "flux1 lora none fp8mm": "per_call",
      "flux1 lora none compile": "compiled",
      "flux1 lora none fp8mm compile": "compiled",
      "flux2-klein lora none": "per_call",
      "flux2-klein lora none fp8mm": "per_call",
      "flux2-klein lora none compile": "per_call",
      "flux2-klein lora none fp8mm compile": "per_call",
    });
    expect(kinds.length).toBe(WORKER_ARCHES.length * BUILTIN_TRAINER.networkTypes.length * 8);
  });

  it("every compiled request carries sampleMergeKind's answer for its own arch, network type, quantize and fp8_matmul, with the plan's reason", () => {
    const seen = new Map<string, string>();
    for (const model of MODELS)
      for (const type of BUILTIN_TRAINER.networkTypes)
        for (const quantize of ["none", "fp8"])
          for (const [steps, gpu] of HARDWARE) {
            const { request: r, choices } = compiled(model, type, quantize, steps, gpu);
            const want = sampleMergeKind(r.arch, r.network_type, { quantize: r.quantize, fp8Matmul: r.fp8_matmul, compile: r.compile });
            expect(r.sample_merge, `${model} ${type} ${quantize} ${gpu}`).toBe(want);
            const choice = choices.filter((x) => x.setting === "sample_merge");
            expect(choice).toHaveLength(1);
            expect(choice[0]!.value).toBe(want);
            expect(choice[0]!.why.startsWith(`${want}: `)).toBe(true);
            seen.set(`${r.arch} ${r.network_type} ${r.quantize}${r.fp8_matmul ? " fp8mm" : ""}${r.compile ? " compile" : ""}`, r.sample_merge);
          }
    // The plan reaches both merges, the compiled samples, and the fp8_matmul case of the per-call one (the rule test covers the rest).
    expect(seen.get("sdxl lora none")).toBe("buffers");
    expect(seen.get("flux1 lora none fp8mm compile")).toBe("compiled");
    expect(seen.get("flux1 lora none")).toBe("per_call");
    expect(seen.get("flux2-klein lora none fp8mm compile")).toBe("per_call");
    expect(seen.get("flux1 lora fp8")).toBe("none");
    expect(seen.get("sdxl dora none")).toBe("none");
    // every mode is one the plan reaches
    expect(new Set(seen.values())).toEqual(new Set(BUILTIN_TRAINER.sampleMerge.modes));
  });

  it("the reasons say why", () => {
    const why = (model: string, type: string, quantize: string, steps = 2000) => compiled(model, type, quantize, steps, "H200").choices.find((x) => x.setting === "sample_merge")!.why;
    expect(why("sdxl", "lora", "none")).toMatch(/^buffers: before each sample W' = W \+ scale x B @ A .*in the VRAM plan/);
    expect(why("flux1-dev", "lora", "none")).toMatch(/^compiled: the samples run the LoRA path through the training's compiled blocks.*fp8 GEMMs, fused.*W_SAMPLE_COMPILE_FALLBACK/);
    expect(why("flux1-dev", "lora", "none", 50)).toMatch(/^per_call: /); // a short run does not compile
    expect(why("flux1-dev", "lora", "none", 50)).not.toMatch(/fp8_matmul/);
    expect(why("flux2-klein-4b", "lora", "none")).toMatch(/^per_call: .*W is fp8_matmul's fp8 copy dequantized/);
    expect(why("flux1-dev", "lora", "fp8")).toBe("none: an fp8 base (base.quantize) keeps the LoRA path while sampling");
    expect(why("sdxl", "lokr", "none")).toMatch(/^none: lokr keeps the LoRA path while sampling/);
    expect(why("zimage-turbo", "lora", "none")).toBe("none: the merge is built for sdxl, flux1, flux2-klein, not zimage");
  });

  it("no samples: none, and the plan lists no choice for it", () => {
    const { request, choices } = compiled("sdxl", "lora", "none", 2000, "H200", 0);
    expect(request.samples).toBeUndefined();
    expect(request.sample_merge).toBe("none");
    expect(choices.some((x) => x.setting === "sample_merge")).toBe(false);
  });

  it("the values core writes are the ones the worker validates (the committed request schema)", () => {
    const file = fileURLToPath(new URL("../../../../schema/worker-train-request.schema.json", import.meta.url));
    const schema = JSON.parse(readFileSync(file, "utf8")) as { properties: Record<string, { enum?: string[] }>; required: string[] };
    expect(schema.properties.sample_merge!.enum).toEqual([...BUILTIN_TRAINER.sampleMerge.modes]);
    expect(schema.required).toContain("sample_merge");
    expect((BUILTIN_TRAINER.settingKeys as readonly string[]).includes("sample_merge")).toBe(true);
  });
});
