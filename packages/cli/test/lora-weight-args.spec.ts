import { describe, expect, it } from "vitest";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { parseMergeInput } from "@loraspec/engine/lora/merge-lora.js";
import { parseLoraArg } from "../src/commands/sample.js";

/**
 * `merge A:W` and `sample --lora A:W` read one syntax through one parser (core lora/options.ts
 * parseWeightedPath). Before, sample took only `-?\d+(\.\d+)?`: `x.safetensors:.5`, `:1e-1` and
 * `:+0.5` became a file named "x.safetensors:.5" (E_FILE_NOT_FOUND) while merge read them, and
 * sample ran `:99` that merge refuses.
 */
const TABLE: Array<[string, string, number]> = [
  ["a.safetensors", "a.safetensors", 1],
  ["a.safetensors:0.8", "a.safetensors", 0.8],
  ["a.safetensors:.5", "a.safetensors", 0.5],
  ["a.safetensors:+0.5", "a.safetensors", 0.5],
  ["a.safetensors:1e-1", "a.safetensors", 0.1],
  ["a.safetensors:-2", "a.safetensors", -2],
  ["a.safetensors:3.", "a.safetensors", 3],
  ["dir:x/a.safetensors:-0.25", "dir:x/a.safetensors", -0.25],
  ["C:\\loras\\c.safetensors:1.2", "C:\\loras\\c.safetensors", 1.2],
  ["C:1", "C:1", 1],
  ["weird:name.safetensors", "weird:name.safetensors", 1],
];

describe("LoRA:weight arguments read the same in merge and sample", () => {
  it.each(TABLE)("%s", (arg, path, weight) => {
    expect(parseMergeInput(arg)).toEqual({ path, weight });
    expect(parseLoraArg(arg)).toEqual({ path, weight });
  });

  it.each(["a.safetensors:99", "a.safetensors:-10.5", "a.safetensors:1e3"])("sample refuses %s as merge does (E_USAGE)", (arg) => {
    let error: unknown;
    try {
      parseLoraArg(arg);
    } catch (e) {
      error = e;
    }
    expect(isLoraspecError(error) && error.code).toBe("E_USAGE");
  });
});
