import { describe, expect, it } from "vitest";
import { recommendContract } from "@loraspec/core/contract/recommend-contract.js";
import { renderContractYaml } from "@loraspec/core/contract/render-contract-yaml.js";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { BASE_MODEL_IDS } from "@loraspec/core/knowledge/base-models.js";
import { COMPATIBILITY, trainerRuns } from "@loraspec/core/knowledge/trainers.js";
import { TARGETS } from "@loraspec/core/contract/schema.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { resolveTrainSettings } from "@loraspec/core/plan/train-settings.js";

const LOCAL = ["ai-toolkit", "kohya", "diffusers"] as const;
const runnable = BASE_MODEL_IDS.filter((base) => LOCAL.some((t) => trainerRuns(t, base)));
const cases = runnable.flatMap((base) => TARGETS.map((target) => [base, target] as const));

describe("recommendContract + renderContractYaml", () => {
  it.each(cases)("%s / %s on an H100: round-trips through YAML and lints without errors", (base, target) => {
    const rec = recommendContract({ base, target, trigger: "txcl", gpu: "H100", vramGb: 80 });
    const yaml = renderContractYaml({ ...rec, schemaRef: "schema.json" });
    const parsed = parseContractText({ text: yaml });
    expect(parsed.base.model).toBe(base);
    const errors = lintContract(parsed).filter((f) => f.severity === "error");
    expect(errors).toEqual([]);
  });

  it.each(BASE_MODEL_IDS.filter((b) => !runnable.includes(b)))("%s: no local trainer loraspec drives trains it, so init refuses it (E_TRAINER_UNSUPPORTED)", (base) => {
    expect(() => recommendContract({ base, target: "style", trigger: "txcl", gpu: "H100", vramGb: 80 })).toThrow(expect.objectContaining({ code: "E_TRAINER_UNSUPPORTED" }));
  });

  it.each(BASE_MODEL_IDS.filter((b) => COMPATIBILITY.some((r) => r.trainer === "fal" && r.base === b && r.supported)))("%s on fal: endpoint filled in, no errors", (base) => {
    const rec = recommendContract({ base, target: "character", trigger: "txcl", hardware: "fal" });
    const parsed = parseContractText({ text: renderContractYaml(rec) });
    expect(parsed.trainer.endpoint).toMatch(/^fal-ai\//);
    expect(lintContract(parsed).filter((f) => f.severity === "error")).toEqual([]);
  });

  it.each(BASE_MODEL_IDS.filter((b) => trainerRuns("diffusers", b)))("%s with the built-in trainer: adamw, so the plan's fast paths stay open (the reason names what 8-bit would save)", (base) => {
    const rec = recommendContract({ base, target: "character", trigger: "txcl", trainer: "diffusers", gpu: "H200", vramGb: 141 });
    expect(rec.contract.hyperparameters?.optimizer).toBe("adamw");
    expect(rec.reasons["hyperparameters.optimizer"]?.why).toMatch(/fused AdamW.*need adamw; 8-bit states would save only ~\d\.\d\d GB/);
    const settings = resolveTrainSettings(parseContractText({ text: renderContractYaml(rec) }), {});
    // SDXL: the whole-step CUDA graph, which adamw8bit turned off (0.54 instead of 0.09 s/step on an H200)
    if (base === "sdxl") expect(settings.cudaGraphs).toBe(true);
    if (base === "sdxl") expect(rec.reasons["hyperparameters.optimizer"]?.why).toMatch(/CUDA graph \(0\.\d+ vs 0\.\d+ s\/step on an H200\)/);
  });

  it.each(["kohya", "ai-toolkit"] as const)("%s: 8-bit AdamW, its own recommended default", (trainer) => {
    const rec = recommendContract({ base: "sdxl", target: "character", trigger: "txcl", trainer, gpu: "H200", vramGb: 141 });
    expect(rec.contract.hyperparameters?.optimizer).toBe("adamw8bit");
  });

  it("comments each chosen value with why and source, and puts the $schema line first", () => {
    const rec = recommendContract({ base: "flux1-dev", target: "character", trigger: "txcl", gpu: "RTX 4090" });
    const yaml = renderContractYaml({ ...rec, schemaRef: "/opt/loraspec/schema/lora-contract.schema.json" });
    expect(yaml.split("\n")[0]).toBe("# yaml-language-server: $schema=/opt/loraspec/schema/lora-contract.schema.json");
    expect(yaml).toMatch(/# range 5e-5 to 1e-4 for a character LoRA on FLUX\.1 \[dev\]\n\s+#\s+source: .*Flux 5e-5 to 1e-4.*\n\s+learning_rate: 1e-4/);
    expect(yaml).toMatch(/#\s+source: .*\n\s+quantize: fp8/);
  });

  it("quantises only as far as the VRAM needs", () => {
    expect(recommendContract({ base: "sdxl", target: "character", trigger: "t", vramGb: 24 }).contract.base.quantize).toBe("none");
    expect(recommendContract({ base: "flux1-dev", target: "character", trigger: "t", vramGb: 24 }).contract.base.quantize).toBe("fp8");
    expect(recommendContract({ base: "flux1-dev", target: "character", trigger: "t", vramGb: 16 }).contract.base.quantize).toBe("nf4");
  });

  it("uses the style LR for an SDXL style and sizes steps from the images found", () => {
    const rec = recommendContract({ base: "sdxl", target: "style", trigger: "t", imageCount: 40 });
    expect(rec.contract.hyperparameters?.learning_rate).toBe(4e-4);
    expect(rec.contract.dataset.expected_images).toBe(40);
    expect(rec.contract.hyperparameters?.steps).toBe(1600);
  });

  it("refuses a trainer that does not support the base", () => {
    try {
      recommendContract({ base: "flux2-dev", target: "character", trigger: "t", trainer: "kohya" });
      expect.unreachable();
    } catch (error) {
      expect(isLoraspecError(error) && error.code).toBe("E_TRAINER_UNSUPPORTED");
    }
  });
});
