import { describe, expect, it } from "vitest";
import { initLrText, num } from "../src/commands/init.js";
import { isLoraspecError, type LoraspecError } from "@loraspec/core/errors.js";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import { recommendContract } from "@loraspec/core/contract/recommend-contract.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { ContractSchema } from "@loraspec/core/contract/schema.js";

/**
 * Messages that said the wrong thing: init's summary "LR undefined" for a fal endpoint that takes no LR; a trigger
 * starting with "--" sampled by Kohya as "-txcl"; `--vram -3` "expected a number"; `.nan` "overflows a 64-bit
 * number"; an empty section "got null null".
 */
function refusal(f: () => unknown): LoraspecError {
  try {
    f();
  } catch (error) {
    if (isLoraspecError(error)) return error;
    throw error;
  }
  throw new Error("expected a refusal");
}

const GOOD = `version: 1
name: txcl-character
base: { model: flux1-dev }
trainer: { name: ai-toolkit, version: "0.12.26" }
target: character
dataset:
  path: ./dataset
trigger: { word: txcl }
hyperparameters:
  learning_rate: 1.0e-4
  steps: 2000
  save_every: 250
`;

describe("init's summary names the learning rate or what sets it", () => {
  it.each([
    ["fal flux1-dev (flux-lora-fast-training takes no LR)", () => recommendContract({ base: "flux1-dev", target: "character", trigger: "txcl", hardware: "fal" }), /^LR set by the fal endpoint/],
    ["fal flux2-dev", () => recommendContract({ base: "flux2-dev", target: "character", trigger: "txcl", hardware: "fal" }), /^LR \de-\d$/],
    ["ai-toolkit sdxl", () => recommendContract({ base: "sdxl", target: "character", trigger: "txcl", trainer: "ai-toolkit", gpu: "H200", vramGb: 141 }), /^LR \de-\d$/],
  ])("%s", (_name, rec, want) => {
    const c = rec().contract;
    const text = initLrText(c.hyperparameters?.learning_rate, c.trainer.name);
    expect(text).toMatch(want);
    expect(text).not.toContain("undefined");
  });
});

describe("numeric init flags say what is wrong", () => {
  it.each([
    ["-3", /got -3, expected a number of 0 or more/],
    ["abc", /got 'abc', expected a number/],
    ["", /expected a number/],
    ["Infinity", /expected a number/],
  ])("--vram %j", (value, message) => {
    const error = refusal(() => num("vram", value));
    expect(error.code).toBe("E_USAGE");
    expect(error.message).toMatch(message);
  });
  it("takes 0 and decimals", () => {
    expect(num("vram", "0")).toBe(0);
    expect(num("vram", "23.5")).toBe(23.5);
  });
});

describe("contract messages name what was written", () => {
  it.each([
    [".nan", GOOD.replace("1.0e-4", ".nan"), "hyperparameters.learning_rate", /^got \.nan \(YAML's not-a-number\), expected a finite number/],
    [".inf", GOOD.replace("1.0e-4", ".inf"), "hyperparameters.learning_rate", /^got \.inf \(YAML's infinity\), expected a finite number/],
    ["-.Inf", GOOD.replace("1.0e-4", "-.Inf"), "hyperparameters.learning_rate", /^got -\.Inf \(YAML's infinity\)/],
    ["1e309", GOOD.replace("1.0e-4", "1e309"), "hyperparameters.learning_rate", /^1e309 overflows a 64-bit number/],
    ["an empty required section", GOOD.replace(/hyperparameters:\n(  .*\n)+/, "hyperparameters:\n"), "hyperparameters", /^is empty \(nothing after the key reads as null\), expected its fields below it/],
    ["an empty optional section", GOOD + "limits:\n", "limits", /^is empty/],
    ["a trigger with --", GOOD.replace("word: txcl", "word: --txcl"), "trigger.word", /without '--'/],
    ["a trigger with -- inside", GOOD.replace("word: txcl", "word: tx--cl"), "trigger.word", /without '--'/],
  ])("%s", (_name, text, field, message) => {
    const error = refusal(() => parseContractText({ text }));
    expect(error.code).toBe("E_CONTRACT_INVALID");
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
    expect(error.message).not.toMatch(/null null|overflows.*\.(nan|inf)/i);
  });

  it("a trigger with a single dash still trains and samples as written in Kohya's prompt file", () => {
    const c = ContractSchema.parse({ ...parseContractText({ text: GOOD.replace("word: txcl", "word: tx-cl") }), base: { model: "sdxl" }, trainer: { name: "kohya" }, samples: { every: 100 } });
    const file = compileKohya(c, {}, { datasetDir: "/d", outputDir: "/o" }).files.find((f) => f.name === "sample_prompts.txt")!;
    expect(file.content).toContain("tx-cl");
  });
});
