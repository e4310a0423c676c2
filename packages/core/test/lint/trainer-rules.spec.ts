import { describe, expect, it } from "vitest";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { RULES } from "@loraspec/core/lint/finding.js";
import { contract, GOOD } from "./helpers.js";

const rules = (c: Parameters<typeof lintContract>[0]) => lintContract(c).filter((f) => RULES.some((r) => r.id === f.rule && ["schedule-unsupported", "trainer-ignores-field", "fal-endpoint-target"].includes(r.id)));
const FAL = { trainer: { name: "fal" as const, version: undefined }, hardware: { kind: "fal" as const }, base: { model: "flux1-dev" as const, quantize: "none" as const } };
const FAL_HP = { learning_rate: undefined, steps: 1500, save_every: undefined };

describe("trainer traps", () => {
  it("refuses constant + warm-up on sd-scripts (it crashes after loading the model)", () => {
    const found = rules(contract({ trainer: { name: "kohya", version: "v0.10.1" }, hyperparameters: { ...GOOD.hyperparameters, warmup_steps: 100 } }));
    expect(found).toMatchObject([{ rule: "schedule-unsupported", severity: "error", field: "hyperparameters.warmup_steps", message: expect.stringContaining("does not require num_warmup_steps") }]);
    expect(found[0]!.source).toContain("train_util.py");
  });

  it("refuses linear + warm-up on ai-toolkit and accepts constant_with_warmup there", () => {
    expect(rules(contract({ hyperparameters: { ...GOOD.hyperparameters, lr_scheduler: "linear", warmup_steps: 50 } }))).toMatchObject([{ rule: "schedule-unsupported" }]);
    expect(rules(contract({ hyperparameters: { ...GOOD.hyperparameters, lr_scheduler: "constant_with_warmup", warmup_steps: 50 } }))).toEqual([]);
  });

  it("names each field fal never receives, once it is set away from its default", () => {
    expect(rules(contract({ ...FAL, hyperparameters: FAL_HP }))).toEqual([]);
    const found = rules(contract({ ...FAL, hyperparameters: { ...FAL_HP, learning_rate: 1e-4, seed: 7, rank: 32 } }));
    expect(found.map((f) => [f.rule, f.field])).toEqual([
      // flux-lora-fast-training (FLUX.1's default endpoint) has no learning_rate input.
      ["trainer-ignores-field", "hyperparameters.learning_rate"],
      ["trainer-ignores-field", "hyperparameters.rank"],
      ["trainer-ignores-field", "hyperparameters.seed"],
    ]);
  });

  it("warns when the portrait trainer trains a style", () => {
    const found = rules(contract({ ...FAL, target: "style", trainer: { name: "fal", version: undefined, endpoint: "fal-ai/flux-lora-portrait-trainer" }, hyperparameters: FAL_HP }));
    expect(found).toMatchObject([{ rule: "fal-endpoint-target", field: "trainer.endpoint", message: expect.stringContaining("subject_crop off") }]);
  });

  it("warns that ai-toolkit trains on one GPU", () => {
    expect(rules(contract({ hardware: { ...GOOD.hardware, gpus: 2 } }))).toMatchObject([{ rule: "trainer-ignores-field", field: "hardware.gpus" }]);
  });
});

describe("init's contracts", () => {
  it.each(["flux1-dev", "flux2-dev", "qwen-image"] as const)("a fal contract from init for %s has no field fal ignores", async (base) => {
    const { recommendContract } = await import("@loraspec/core/contract/recommend-contract.js");
    const { ContractSchema } = await import("@loraspec/core/contract/schema.js");
    const rec = recommendContract({ base, target: "character", trigger: "txcl", hardware: "fal" });
    expect(lintContract(ContractSchema.parse(rec.contract)).filter((f) => f.rule === "trainer-ignores-field")).toEqual([]);
  });
});
