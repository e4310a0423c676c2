import { describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { editYaml, type RemovedPairs } from "../src/yaml-edit.js";

/** A contract the way people write them: comments, flow maps and lists, quotes, blank lines. */
const CONTRACT = `# my character LoRA
version: 1
name: "demo"   # shown in reports
base: { model: sdxl }
trainer: { name: diffusers }

dataset:
  path: ./dataset   # relative to this file
  resolution: 1024
  repeats: 2 # keep low
trigger: { word: zxqv }
hyperparameters:
  # tuned by hand
  learning_rate: 1e-4  # the one to try first
  steps: 1500
  rank: 16
validation:
  weight_sweep: [0.6, 0.8, 1.0]
  seeds: [1, 2, 3]
  self_weight: 1.0
`;

/** The changed span of `after` against `before`: common prefix and suffix cut away. */
function changedSpan(before: string, after: string): { start: number; endBefore: number } {
  let start = 0;
  while (start < before.length && start < after.length && before[start] === after[start]) start++;
  let tail = 0;
  while (tail < before.length - start && tail < after.length - start && before[before.length - 1 - tail] === after[after.length - 1 - tail]) tail++;
  return { start, endBefore: before.length - tail };
}

describe("form edits change the contract in place", () => {
  it.each([
    ["a block scalar", ["hyperparameters", "steps"], 2000, undefined],
    ["a number typed in exponent form", ["hyperparameters", "learning_rate"], 5e-5, "5e-5"],
    ["a decimal", ["validation", "self_weight"], 0.05, "0.05"],
    ["a negative number", ["dataset", "repeats"], -2, "-2"],
    ["a value in a flow map", ["base", "model"], "flux-dev", undefined],
    ["a double-quoted string", ["name"], 'a "quoted", name', undefined],
    ["a string needing quotes in a flow map", ["trigger", "word"], "a, b", undefined],
    ["a flow list", ["validation", "seeds"], [4, 5], undefined],
    ["a string that looks like a number", ["dataset", "path"], "123", undefined],
  ])("%s: only the value's bytes change", (_name, path, value, raw) => {
    const out = editYaml(CONTRACT, { path: path as string[], value, raw });
    const doc = parseDocument(out);
    expect(doc.errors).toEqual([]);
    expect(doc.getIn(path as string[])?.toString()).toBe(parseDocument(`v: ${JSON.stringify(value)}`).get("v")?.toString());
    const node = parseDocument(CONTRACT).getIn(path as string[], true) as { range: [number, number, number] };
    const span = changedSpan(CONTRACT, out);
    expect(span.start).toBeGreaterThanOrEqual(node.range[0]);
    expect(span.endBefore).toBeLessThanOrEqual(node.range[1]);
    if (raw) expect(out).toContain(`: ${raw}`);
  });

  it.each([
    ["a block pair with a trailing comment", ["hyperparameters", "learning_rate"], 1e-4, "1e-4"],
    ["the last pair of a block map", ["dataset", "repeats"], 2, "2"],
    ["a pair in a flow map", ["base", "model"], "sdxl", undefined],
    ["a top-level pair", ["version"], 1, "1"],
  ])("clearing and retyping %s gives back the file byte for byte", (_name, path, value, raw) => {
    const removed: RemovedPairs = new Map();
    const cleared = editYaml(CONTRACT, { path: path as string[], value: undefined }, removed);
    expect(parseDocument(cleared).hasIn(path as string[])).toBe(false);
    // Everything else is untouched: the cut is the pair's own line (or flow item).
    expect(cleared.length).toBeLessThan(CONTRACT.length);
    const retyped = editYaml(cleared, { path: path as string[], value, raw }, removed);
    expect(retyped).toBe(CONTRACT);
  });

  it("a new key goes after its section's last key with the same indentation, the rest untouched", () => {
    const out = editYaml(CONTRACT, { path: ["hyperparameters", "batch_size"], value: 2 });
    expect(out).toBe(CONTRACT.replace("  rank: 16\n", "  rank: 16\n  batch_size: 2\n"));
    const flow = editYaml(CONTRACT, { path: ["trainer", "version"], value: "0.32.0" });
    expect(flow).toBe(CONTRACT.replace("trainer: { name: diffusers }", "trainer: { name: diffusers, version: 0.32.0 }"));
  });

  it("a new section is appended and nothing else is reformatted (flow lists keep their spacing)", () => {
    const out = editYaml(CONTRACT, { path: ["limits", "max_cost_usd"], value: 5 });
    expect(out).toBe(`${CONTRACT}limits:\n  max_cost_usd: 5\n`);
    expect(out).toContain("weight_sweep: [0.6, 0.8, 1.0]");
  });

  it("leaves text with a syntax error alone", () => {
    const broken = "a: [1, 2\n";
    expect(editYaml(broken, { path: ["a"], value: 1 })).toBe(broken);
  });
});
