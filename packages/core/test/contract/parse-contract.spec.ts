import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { isLoraspecError, type LoraspecError } from "@loraspec/core/errors.js";
import { contractJsonSchema } from "@loraspec/core/contract/json-schema.js";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";

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

function fail(text: string): LoraspecError {
  try {
    parseContractText({ text, file: "lora.yaml" });
  } catch (error) {
    if (isLoraspecError(error)) return error;
    throw error;
  }
  throw new Error("expected the contract to be rejected");
}

describe("parseContractText", () => {
  it("parses a minimal contract and fills defaults", () => {
    const c = parseContractText({ text: GOOD });
    expect(c.base.model).toBe("flux1-dev");
    expect(c.hyperparameters.batch_size).toBe(1);
    expect(c.hyperparameters.optimizer).toBe("adamw8bit");
    expect(c.validation.weight_sweep).toEqual([0.6, 0.8, 1.0]);
    // No silent failure-path defaults: check warns when the contract leaves it out (lint failure-path-unset).
    expect(c.failure.on_oom).toBeUndefined();
    expect(c.failure.on_divergence).toBeUndefined();
    expect(c.dataset.aspect).toBe("square");
  });

  it.each([
    ["bad enum", GOOD.replace("steps: 2000", "steps: 2000\n  optimizer: adam9"), "E_CONTRACT_INVALID", 12, "hyperparameters.optimizer", /got 'adam9', expected one of adamw, adamw8bit/],
    ["unknown base model", GOOD.replace("flux1-dev", "flux9"), "E_UNKNOWN_BASE_MODEL", 3, "base.model", /got 'flux9', expected one of sdxl, flux1-dev/],
    ["unknown trainer", GOOD.replace("ai-toolkit", "onetrainer"), "E_UNKNOWN_TRAINER", 4, "trainer.name", /got 'onetrainer'/],
    ["misspelled key", GOOD.replace("steps: 2000", "stpes: 2000"), "E_CONTRACT_INVALID", 11, "hyperparameters.stpes", /unknown field; allowed here: learning_rate, steps/],
    ["wrong type", GOOD.replace("steps: 2000", "steps: many"), "E_CONTRACT_INVALID", 11, "hyperparameters.steps", /got string 'many', expected number/],
    ["missing field", GOOD.replace("target: character\n", ""), "E_CONTRACT_INVALID", 1, "target", /missing, expected one of character, style, product/],
    ["negative LR", GOOD.replace("1.0e-4", "-1"), "E_CONTRACT_INVALID", 10, "hyperparameters.learning_rate", /got -1, expected > 0/],
    ["YAML syntax: unclosed [", GOOD.replace("target: character", "target: [oops"), "E_YAML_SYNTAX", 5, undefined, /line 5, column 9: '\[' opened here is never closed/],
    ["YAML syntax: unclosed {", GOOD.replace("base: { model: flux1-dev }", "base: { model: flux1-dev"), "E_YAML_SYNTAX", 3, undefined, /line 3, column 7: '\{' opened here/],
    ["YAML syntax: unclosed quote", GOOD.replace("name: txcl-character", "name: 'txcl-character"), "E_YAML_SYNTAX", 2, undefined, /line 2, column 7: ''' opened here/],
    ["YAML syntax: bad indent", GOOD.replace("  steps: 2000", " steps: 2000"), "E_YAML_SYNTAX", 11, undefined, /line 11, column 1: All mapping items/],
    ["overflowing number", GOOD.replace("1.0e-4", "1e309"), "E_CONTRACT_INVALID", 10, "hyperparameters.learning_rate", /^1e309 overflows a 64-bit number/],
    ["5 MB name", GOOD.replace("name: txcl-character", `name: ${"a".repeat(5_000_000)}`), "E_CONTRACT_INVALID", 2, "name", /^5000000 characters, at most 128 allowed/],
    ["long prompt", GOOD + `validation:\n  trigger_prompts: ["${"x".repeat(3000)}"]\n`, "E_CONTRACT_INVALID", 14, "validation.trigger_prompts[0]", /3000 characters, at most 2000/],
    ["several nodes without a rendezvous", GOOD + "hardware: { nodes: 2 }\n", "E_CONTRACT_INVALID", 13, "hardware.rendezvous", /2 nodes need node 0's host:port/],
    ["a node rank past the nodes", GOOD + "hardware: { nodes: 2, rendezvous: 'n0:29500', node_rank: 2 }\n", "E_CONTRACT_INVALID", 13, "hardware.node_rank", /below nodes \(2\)/],
    ["a rendezvous without a port", GOOD + "hardware: { nodes: 2, rendezvous: n0 }\n", "E_CONTRACT_INVALID", 13, "hardware.rendezvous", /host:port/],
    ["trigger with a space", GOOD.replace("word: txcl", "word: 'tx cl'"), "E_CONTRACT_INVALID", 8, "trigger.word", /one token/],
  ])("%s -> %s at line %d", (_name, text, code, line, field, message) => {
    const error = fail(text);
    expect(error.code).toBe(code);
    expect(error.file).toBe("lora.yaml");
    expect(error.line).toBe(line);
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
  });

  it("reports every problem, not only the first", () => {
    const error = fail(GOOD.replace("steps: 2000", "steps: 0\n  rank: -4"));
    const problems = (error.details as { problems: unknown[] }).problems;
    expect(problems).toHaveLength(2);
    expect(error.message).toMatch(/1 more problem/);
  });

  it.each(["", "\n\n", "# just a comment\n", "---\n"])("an empty contract (%j) is one line", (text) => {
    const error = fail(text);
    expect(error.code).toBe("E_CONTRACT_INVALID");
    expect(error.message).toBe("the contract is empty");
    expect(error.line).toBe(1);
  });

  it("rejects a document that is not a mapping", () => {
    expect(fail("- a\n- b\n").code).toBe("E_CONTRACT_INVALID");
  });
});

describe("JSON Schema", () => {
  it("the committed schema/lora-contract.schema.json is current (regenerate: npx tsx scripts/write-schema.ts)", () => {
    const file = fileURLToPath(new URL("../../../../schema/lora-contract.schema.json", import.meta.url));
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual(contractJsonSchema());
  });

  it("lists the base models and descriptions for editors", () => {
    const schema = contractJsonSchema() as { properties: Record<string, { properties?: Record<string, { enum?: string[]; description?: string }> }> };
    expect(schema.properties.base?.properties?.model?.enum).toContain("flux2-klein-4b");
    expect(schema.properties.hyperparameters?.properties?.save_every?.description).toMatch(/checkpoint/);
  });
});
