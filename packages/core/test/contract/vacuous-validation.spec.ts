import { describe, expect, it } from "vitest";
import { isLoraspecError, type LoraspecError } from "@loraspec/core/errors.js";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import { planValidation } from "@loraspec/core/validate/plan-validation.js";

/**
 * A validation rubric that tests nothing is refused when the contract is read (check's E_CONTRACT_INVALID,
 * naming the field), never run: `weight_sweep: []` once made validate pass without loading the LoRA (an
 * empty verdict table, exit 0). Each row is one setting that would make a check vacuous; the last rows
 * are the nearest settings that still test something, held to plan at least one image with the LoRA.
 */
const contract = (validation: string) => `version: 1
name: txcl-character
base: { model: flux1-dev }
trainer: { name: ai-toolkit, version: "0.12.26" }
target: character
dataset: { path: ./dataset }
trigger: { word: txcl }
hyperparameters: { learning_rate: 1.0e-4, steps: 2000, save_every: 250 }
validation: ${validation}
`;

function refusal(text: string): LoraspecError | undefined {
  try {
    parseContractText({ text, file: "lora.yaml" });
    return undefined;
  } catch (error) {
    if (isLoraspecError(error)) return error;
    throw error;
  }
}

describe("validation settings that would make validate vacuous are refused", () => {
  it.each([
    ["weight_sweep: []", "{ weight_sweep: [] }", "validation.weight_sweep", /at least 1 item/],
    ["weight_sweep: [0] (the LoRA never applied)", "{ weight_sweep: [0] }", "validation.weight_sweep", /above 0/],
    ["weight_sweep: [0, 0]", "{ weight_sweep: [0, 0] }", "validation.weight_sweep", /above 0/],
    ["seeds: [] (nothing rendered)", "{ seeds: [] }", "validation.seeds", /at least 1 item/],
    ["trigger_prompts: [] (the trigger check on a prompt nobody named)", "{ trigger_prompts: [] }", "validation.trigger_prompts", /at least 1 item/],
    ["an empty trigger prompt", "{ trigger_prompts: [''] }", "validation.trigger_prompts", /./],
    ["self_weight: 0 with a stack (the stack without this LoRA)", "{ self_weight: 0, stack: [{ lora: ./other.safetensors, weight: 0.5 }] }", "validation.self_weight", /> 0/],
  ])("%s", (_name, validation, field, message) => {
    const error = refusal(contract(validation));
    expect(error, "refused").toBeDefined();
    expect(error!.code).toBe("E_CONTRACT_INVALID");
    expect(`${error!.field ?? ""} ${error!.message}`).toContain(field);
    expect(error!.message).toMatch(message);
  });

  it.each([
    ["left out (defaults)", "{}"],
    ["weight_sweep: [0, 1] (0 as a baseline beside a real weight)", "{ weight_sweep: [0, 1] }"],
    ["one seed, one prompt, one weight", "{ seeds: [7], trigger_prompts: ['a photo of {trigger}'], weight_sweep: [1] }"],
  ])("still accepted and tests the LoRA: %s", (_name, validation) => {
    const c = parseContractText({ text: contract(validation) });
    const plan = planValidation({ rubric: c.validation, trigger: "txcl", target: "character", candidates: [{ name: "final", path: "/r/lora.safetensors" }] });
    const withLora = plan.jobs.filter((j) => j.adapters.some((a) => a.path === "/r/lora.safetensors"));
    expect(withLora.length).toBeGreaterThan(0);
    expect(plan.weights.some((w) => w.weight > 0 && w.trigger.length > 0)).toBe(true);
  });
});
