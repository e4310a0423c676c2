import { beforeAll, describe, expect, it } from "vitest";
import { lintContract, type LintOptions } from "@loraspec/core/lint/lint-contract.js";
import { RULES, type Finding } from "@loraspec/core/lint/finding.js";
import type { WordLookup } from "@loraspec/core/lint/clip-pretokenize.js";
import { loadEnglishWords } from "@loraspec/engine/contract/english-words.js";
import { contract, dataset, GOOD } from "./helpers.js";

let words: WordLookup;
beforeAll(async () => {
  words = await loadEnglishWords();
});

function lint(c: ReturnType<typeof contract>, opts: LintOptions = {}): Finding[] {
  return lintContract(c, { words, dataset: dataset(20), ...opts });
}
const rules = (fs: Finding[]) => fs.map((f) => f.rule);

describe("lintContract on the good contract", () => {
  it("finds nothing", () => {
    expect(lint(contract())).toEqual([]);
  });
});

// Every row of the guide's pitfall table: the contract that reproduces it, and the rule it must raise (as an error).
const PITFALLS: [string, string, () => ReturnType<typeof contract>, LintOptions?][] = [
  ["Kohya picked for FLUX.2", "trainer-unsupported-base", () => contract({ base: { model: "flux2-dev", quantize: "fp8" }, trainer: { name: "kohya", version: "v0.10.1" }, hardware: { vram_gb: 80 }, limits: { vram_ceiling_gb: 80 } })],
  ["SDXL LR reused on Flux", "lr-sdxl-on-flux", () => contract({ hyperparameters: { learning_rate: 4e-4, steps: 2000, save_every: 250 } })],
  ["a real English word as trigger", "trigger-english-word", () => contract({ trigger: { word: "woman" } }), { dataset: dataset(20, () => ({ caption: "woman, a woman smiling" })) }],
  ["tag-cluster captions on a T5 model (declared)", "captions-tags-on-t5", () => contract({ captions: { style: "tags" } })],
  ["tag-cluster captions on a T5 model (found in the folder)", "captions-tags-on-t5", () => contract(), { dataset: dataset(20, () => ({ caption: "txcl, 1girl, red hair, smile, park, outdoors" })) }],
  ["four LoRAs stacked at full weight", "stack-over-limit", () => contract({ validation: { stack: [{ lora: "a.safetensors", weight: 1 }, { lora: "b.safetensors", weight: 1 }, { lora: "c.safetensors", weight: 1 }] } })],
  ["SDXL style LR on a character", "recipe-target-mismatch", () => contract({ base: { model: "sdxl" }, trainer: { name: "kohya", version: "v0.10.1" }, hyperparameters: { learning_rate: 4e-4, steps: 2000, save_every: 250 } })],
  ["character dataset and steps for a style", "recipe-target-mismatch", () => contract({ target: "style", dataset: { path: "./dataset", expected_images: 15 }, hyperparameters: { learning_rate: 1e-4, steps: 2500, save_every: 250 } }), { dataset: dataset(15) }],
];

describe("pitfall table rows", () => {
  it.each(PITFALLS)("%s -> %s", (_name, rule, make, opts) => {
    const findings = lint(make(), opts);
    const hit = findings.find((f) => f.rule === rule);
    expect(hit, JSON.stringify(rules(findings))).toBeDefined();
    expect(hit!.severity).toBe("error");
    expect(hit!.source.length).toBeGreaterThan(10);
    expect(hit!.fix.length).toBeGreaterThan(10);
  });
});

describe("additional rules", () => {
  it.each<[string, string, "error" | "warning" | "info", () => ReturnType<typeof contract>, LintOptions?]>([
    ["dataset below the target's minimum", "dataset-below-minimum", "error", () => contract({ dataset: { path: "./dataset", expected_images: 6 } }), { dataset: dataset(6) }],
    ["dataset above the target's range", "dataset-size-range", "warning", () => contract({ dataset: { path: "./dataset", expected_images: 40 } }), { dataset: dataset(40) }],
    ["folder count differs from expected_images", "dataset-count-mismatch", "warning", () => contract(), { dataset: dataset(22) }],
    ["steps inconsistent with passes per image", "steps-passes-mismatch", "warning", () => contract({ hyperparameters: { learning_rate: 1e-4, steps: 2000, passes_per_image: 40, save_every: 250 } })],
    ["steps outside the target's range", "steps-out-of-range", "warning", () => contract({ hyperparameters: { learning_rate: 1e-4, steps: 400, save_every: 100 } })],
    ["trainer version too old for the base", "trainer-version-too-old", "error", () => contract({ trainer: { name: "kohya", version: "v0.9.1" } })],
    ["klein on ai-toolkit before the load-time VRAM fixes", "trainer-version-too-old", "warning", () => contract({ base: { model: "flux2-klein-4b" }, trainer: { name: "ai-toolkit", version: "0.11.0" } })],
    ["trainer version not pinned", "trainer-version-unpinned", "warning", () => contract({ trainer: { name: "kohya", version: undefined } })],
    ["trainer version a commit hash", "trainer-version-unchecked", "info", () => contract({ trainer: { name: "kohya", version: "48d368f" } })],
    ["VRAM ceiling below the estimate", "vram-below-profile", "error", () => contract({ base: { model: "flux1-dev", quantize: "none" }, hardware: { vram_gb: 16 }, limits: { vram_ceiling_gb: 16 } })],
    ["estimated cost above max cost", "cost-over-limit", "error", () => contract({ trainer: { name: "fal" }, hardware: { kind: "fal" }, base: { model: "flux2-dev" }, limits: { max_cost_usd: 5 } })],
    ["max cost without a cost estimate", "cost-unknown", "warning", () => contract({ hardware: { gpu: "RTX 4090", vram_gb: 24, price_per_hour: undefined } })],
    ["max cost on fal with no price for the endpoint", "cost-limit-unchecked", "error", () => contract({ trainer: { name: "fal", version: undefined }, hardware: { kind: "fal" }, base: { model: "qwen-image" }, limits: { max_cost_usd: 5 } })],
    ["walltime above the limit", "walltime-over-limit", "warning", () => contract({ limits: { max_walltime_hours: 1 } })],
    ["fal trainer on local hardware", "hardware-trainer-mismatch", "error", () => contract({ trainer: { name: "fal", version: undefined } })],
    ["reg images with a fal trainer", "reg-images-unsupported", "error", () => contract({ trainer: { name: "fal", version: undefined }, hardware: { kind: "fal" }, dataset: { path: "./dataset", reg_path: "./reg" } })],
    ["no save-every-N", "no-save-every", "warning", () => contract({ hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: undefined } })],
    ["images below the native resolution", "image-below-native", "warning", () => contract(), { dataset: dataset(20, (i) => (i < 3 ? { width: 512, height: 512 } : {})) }],
    ["mixed aspect ratios under a single crop", "mixed-aspect-single-crop", "warning", () => contract(), { dataset: dataset(20, (i) => (i % 2 ? { width: 1024, height: 1536 } : {})) }],
    ["captions missing", "caption-missing", "warning", () => contract(), { dataset: dataset(20, (i) => (i === 4 ? { caption: null } : {})) }],
    ["trigger mid-caption, character", "trigger-not-at-start", "error", () => contract(), { dataset: dataset(20, (i) => (i === 2 ? { caption: "a woman, txcl" } : {})) }],
    ["trigger mid-caption, style", "trigger-not-at-start", "warning", () => contract({ target: "style", dataset: { path: "./dataset", expected_images: 30 }, hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250 } }), { dataset: dataset(30, (i) => (i === 2 ? { caption: "a street, txcl" } : {})) }],
    ["Flux LR a little below the range", "lr-out-of-range", "warning", () => contract({ hyperparameters: { learning_rate: 4e-5, steps: 2000, save_every: 250 } })],
    ["Flux LR far below the range", "lr-out-of-range", "error", () => contract({ hyperparameters: { learning_rate: 1e-5, steps: 2000, save_every: 250 } })],
    ["SDXL character LR 1e-3 (further out than the style range)", "lr-out-of-range", "error", () => contract({ base: { model: "sdxl", quantize: "none" }, trainer: { name: "kohya", version: "v0.10.1" }, hyperparameters: { learning_rate: 1e-3, steps: 2000, save_every: 250 } })],
    ["kohya Flux stack: merge defects #1612/#1888", "known-defect-kohya-merge", "info", () => contract({ trainer: { name: "kohya", version: "v0.10.1" }, validation: { stack: [{ lora: "s.safetensors", weight: 0.3 }], self_weight: 0.7 } })],
  ])("%s -> %s (%s)", (_name, rule, severity, make, opts) => {
    const findings = lint(make(), opts);
    const hit = findings.find((f) => f.rule === rule);
    expect(hit, JSON.stringify(rules(findings))).toBeDefined();
    expect(hit!.severity).toBe(severity);
    expect(hit!.source).not.toBe("");
  });

  it("does not flag buckets for mixed aspect ratios", () => {
    const c = contract({ dataset: { path: "./dataset", expected_images: 20, aspect: "buckets" } });
    expect(rules(lint(c, { dataset: dataset(20, (i) => (i % 2 ? { width: 1024, height: 1536 } : {})) }))).not.toContain("mixed-aspect-single-crop");
  });

  it("accepts a stack of three at combined weight 1.0", () => {
    const c = contract({ validation: { stack: [{ lora: "a.safetensors", weight: 0.3 }, { lora: "b.safetensors", weight: 0.2 }], self_weight: 0.5 } });
    expect(rules(lint(c))).not.toContain("stack-over-limit");
  });

  it("allows tag captions on SDXL", () => {
    const c = contract({ base: { model: "sdxl" }, trainer: { name: "kohya", version: "v0.10.1" }, captions: { style: "tags" } });
    expect(rules(lint(c, { dataset: dataset(20, () => ({ caption: "txcl, 1girl, red hair, smile, park" })) }))).not.toContain("captions-tags-on-t5");
  });

  it("shows how the trigger splits into CLIP tokens", () => {
    const hit = lint(contract({ trigger: { word: "ohwx_man" } }), { dataset: dataset(20, () => ({ caption: "ohwx_man smiling" })) }).find((f) => f.rule === "trigger-english-word");
    expect(hit?.message).toContain("[ohwx</w> _</w> man</w>]");
  });

  it("flags a trigger made of English words", () => {
    const hit = lint(contract({ trigger: { word: "redcar" } }), { dataset: dataset(20, () => ({ caption: "redcar parked" })) }).find((f) => f.rule === "trigger-english-word");
    expect(hit?.message).toMatch(/red \+ car/);
  });

  it("counts the images prep keeps and says how many of the folder's it leaves out", () => {
    const scan = { ...dataset(0), candidates: 20 };
    const fs = lint(contract({ dataset: { path: "./dataset", expected_images: 20 } }), { dataset: scan });
    expect(fs.find((f) => f.rule === "dataset-below-minimum")?.message).toMatch(/^0 usable images in the folder \(prep leaves out 20 of 20: see dataset-skipped/);
    expect(fs.find((f) => f.rule === "dataset-count-mismatch")?.message).toMatch(/expected_images is 20 but the folder holds 0 usable images \(prep leaves out 20 of 20/);
    const all = lint(contract({ dataset: { path: "./dataset", expected_images: 6 } }), { dataset: { ...dataset(6), candidates: 6 } });
    expect(all.find((f) => f.rule === "dataset-below-minimum")?.message).toMatch(/^6 images in the folder; /);
  });

  it("every rule id it can emit is documented in RULES", () => {
    const ids = new Set(RULES.map((r) => r.id));
    const seen = [...PITFALLS.map((p) => p[1])];
    for (const id of seen) expect(ids.has(id)).toBe(true);
    expect(RULES.filter((r) => r.pitfall)).toHaveLength(6);
  });

  it("keeps the good example clean even without a dataset scan", () => {
    expect(lintContract(contract(), { words })).toEqual([]);
    expect(GOOD.trigger.word).toBe("txcl");
  });
});
