import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import { nextOomFallback } from "@loraspec/engine/run/oom-fallback.js";

function contract(hp: Record<string, unknown>, failure: Record<string, unknown>, base: Record<string, unknown> = { model: "sdxl" }) {
  return parseContractText({
    text: stringify({
      version: 1,
      name: "x",
      base,
      trainer: { name: "kohya" },
      target: "character",
      dataset: { path: "./d" },
      trigger: { word: "txcl" },
      hyperparameters: { steps: 100, learning_rate: 1e-4, ...hp },
      failure,
    }),
    file: "lora.yaml",
  });
}

describe("nextOomFallback", () => {
  const table: [string, Record<string, unknown>, Record<string, unknown>, string[], string | undefined, Record<string, unknown>?][] = [
    ["on_oom fail: never", { gradient_checkpointing: false }, { on_oom: "fail" }, [], undefined],
    ["checkpointing first", { gradient_checkpointing: false, optimizer: "adamw" }, { on_oom: "fallback" }, [], "gradient_checkpointing", { gradient_checkpointing: true }],
    ["skips what is already on", { gradient_checkpointing: true, optimizer: "adamw" }, { on_oom: "fallback" }, [], "optimizer_8bit", { optimizer: "adamw8bit" }],
    [
      "halves the batch, keeps the effective batch",
      { gradient_checkpointing: true, optimizer: "adamw8bit", batch_size: 4, gradient_accumulation: 1 },
      { on_oom: "fallback" },
      [],
      "smaller_batch",
      { batch_size: 2, gradient_accumulation: 2 },
    ],
    ["nothing left", { gradient_checkpointing: true, optimizer: "adamw8bit", batch_size: 1 }, { on_oom: "fallback" }, [], undefined],
    ["tried ones are skipped", { gradient_checkpointing: false, optimizer: "adamw" }, { on_oom: "fallback" }, ["gradient_checkpointing"], "optimizer_8bit"],
  ];
  it.each(table)("%s", (_name, hp, failure, tried, expected, changed) => {
    const c = contract(hp, failure);
    const step = nextOomFallback(c, tried);
    expect(step?.fallback).toBe(expected);
    if (step && changed) expect(step.contract.hyperparameters).toMatchObject(changed);
    // The original is never modified.
    expect(c.hyperparameters).toMatchObject(hp);
  });

  it("reads checkpointing as resolved when the contract leaves it out", () => {
    // kohya: on by default, so the next fallback is the optimizer.
    expect(nextOomFallback(contract({ optimizer: "adamw" }, { on_oom: "fallback" }), [])?.fallback).toBe("optimizer_8bit");
    // The built-in trainer under a roomy ceiling: the plan turned it off, so turning it on comes first.
    const builtIn = parseContractText({
      text: stringify({
        version: 1,
        name: "x",
        base: { model: "sdxl" },
        trainer: { name: "diffusers" },
        hardware: { kind: "local", vram_gb: 80 },
        target: "character",
        dataset: { path: "./d" },
        trigger: { word: "txcl" },
        hyperparameters: { steps: 100, learning_rate: 1e-4, optimizer: "adamw" },
        failure: { on_oom: "fallback" },
      }),
      file: "lora.yaml",
    });
    const step = nextOomFallback(builtIn, []);
    expect(step?.fallback).toBe("gradient_checkpointing");
    expect(step?.contract.hyperparameters.gradient_checkpointing).toBe(true);
  });

  it("quantize_base turns on fp8 base weights", () => {
    const step = nextOomFallback(contract({ gradient_checkpointing: true }, { on_oom: "fallback", oom_fallbacks: ["quantize_base"] }, { model: "flux1-dev" }), []);
    expect(step).toMatchObject({ fallback: "quantize_base", contract: { base: { quantize: "fp8" } } });
  });
});
