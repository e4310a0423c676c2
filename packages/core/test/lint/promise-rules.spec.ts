import { beforeAll, describe, expect, it } from "vitest";
import { lintContract, type LintOptions } from "@loraspec/core/lint/lint-contract.js";
import { RULES, type Finding } from "@loraspec/core/lint/finding.js";
import type { WordLookup } from "@loraspec/core/lint/clip-pretokenize.js";
import { BASE_MODEL_IDS, getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { FAL_ENDPOINTS } from "@loraspec/core/knowledge/fal-endpoints.js";
import { getCompatibility } from "@loraspec/core/knowledge/trainers.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { fitVram } from "@loraspec/core/plan/fit-vram.js";
import { loadEnglishWords } from "@loraspec/engine/contract/english-words.js";
import { contract, dataset } from "./helpers.js";

let words: WordLookup;
beforeAll(async () => {
  words = await loadEnglishWords();
});
const lint = (c: ReturnType<typeof contract>, opts: LintOptions = {}): Finding[] => lintContract(c, { words, dataset: dataset(20), ...opts });
const find = (fs: Finding[], rule: string) => fs.find((f) => f.rule === rule);
const errors = (fs: Finding[]) => fs.filter((f) => f.severity === "error").map((f) => f.rule);

describe("failure path", () => {
  it("a contract without failure gets one warning naming both fields", () => {
    const hit = find(lint(contract({ failure: { on_divergence: undefined, on_oom: undefined } })), "failure-path-unset");
    expect(hit?.severity).toBe("warning");
    expect(hit?.message).toMatch(/failure\.on_divergence and failure\.on_oom/);
  });
  it("names only the field left out", () => {
    expect(find(lint(contract({ failure: { on_divergence: "stop", on_oom: undefined } })), "failure-path-unset")?.message).toMatch(/failure\.on_oom is not set/);
  });
  it("on_divergence: continue warns with the guide's reason", () => {
    const hit = find(lint(contract({ failure: { on_divergence: "continue", on_oom: "fail" } })), "failure-continue-on-divergence");
    expect(hit?.severity).toBe("warning");
    expect(hit?.source).toMatch(/musubi-tuner#26/);
  });
  it("an explicit failure path is clean", () => {
    expect(lint(contract({ failure: { on_divergence: "rollback", on_oom: "fail" } })).map((f) => f.rule)).not.toContain("failure-path-unset");
  });
});

describe("save_every vs steps", () => {
  it.each([
    [250, 2000, false],
    [2000, 2000, false],
    [2001, 2000, true],
    [5000, 1500, true],
  ])("save_every %d, steps %d -> error %s", (every, steps, bad) => {
    const fs = lint(contract({ hyperparameters: { learning_rate: 1e-4, steps, save_every: every } }));
    expect(errors(fs).includes("save-every-over-steps")).toBe(bad);
    expect(planRun(contract({ hyperparameters: { learning_rate: 1e-4, steps, save_every: every } })).checkpoints > 0 || bad).toBe(true);
  });
});

describe("a training resolution off the built-in trainer's step", () => {
  it.each([
    ["diffusers", 1024, undefined, []],
    ["diffusers", 1000, undefined, ["dataset.resolution"]],
    ["diffusers", 64, undefined, []],
    ["diffusers", 100, undefined, ["dataset.resolution"]],
    ["diffusers", 1024, [512, 1000], ["dataset.buckets.resolutions.1"]],
    ["kohya", 1000, [512], []], // bucketed, Kohya rounds (resolution-rounded, a warning: resolution-rules.spec.ts)
    ["kohya", 1000, undefined, ["dataset.resolution"]], // square FLUX.1 at 1000: a 125 px latent, odd, fails the 2x2 pack
  ] as const)("%s at %d (bucket resolutions %j) -> errors on %j", (trainer, resolution, resolutions, fields) => {
    const c = contract({
      trainer: { name: trainer },
      dataset: { path: "./dataset", expected_images: 20, resolution, ...(resolutions ? { aspect: "buckets", buckets: { resolutions: [...resolutions] } } : {}) },
    });
    const hits = lint(c).filter((f) => f.rule === "resolution-off-step");
    expect(hits.map((f) => f.field)).toEqual(fields);
    for (const f of hits) {
      expect(f.severity).toBe("error");
      expect(f.fix).toMatch(/ or /); // the two nearest sides on the step
    }
  });
});

describe("fal endpoint x base", () => {
  const fal = (base: (typeof BASE_MODEL_IDS)[number], endpoint?: string) =>
    contract({ base: { model: base, quantize: "none" }, trainer: { name: "fal", version: undefined, endpoint }, hardware: { kind: "fal", gpu: undefined, vram_gb: undefined, price_per_hour: undefined }, limits: { vram_ceiling_gb: undefined, max_cost_usd: undefined } });
  const cases = BASE_MODEL_IDS.flatMap((base) => FAL_ENDPOINTS.map((e) => [base, e.endpoint, e.bases.includes(base)] as const));
  it.each(cases)("%s with %s -> ok %s", (base, endpoint, ok) => {
    if (!getCompatibility("fal", base)?.supported) return; // trainer-unsupported-base reports these
    expect(errors(lint(fal(base, endpoint))).includes("fal-endpoint-base-mismatch")).toBe(!ok);
  });
  it("a made-up endpoint is an error naming the right one", () => {
    const hit = find(lint(fal("flux2-dev", "fal-ai/flux-9-trainer")), "fal-endpoint-base-mismatch");
    expect(hit?.fix).toMatch(/fal-ai\/flux-2-trainer/);
  });
  it("every supported base's default endpoint is in the endpoint table and trains it", () => {
    for (const base of BASE_MODEL_IDS) {
      const compat = getCompatibility("fal", base);
      if (compat?.supported) expect(FAL_ENDPOINTS.find((e) => e.endpoint === compat.endpoint)?.bases).toContain(base);
    }
  });
});

describe("hardware.block_swap", () => {
  const kohyaFlux = (over: Parameters<typeof contract>[0] = {}) => contract({ trainer: { name: "kohya", version: "v0.10.1" }, ...over });
  it("lowers the VRAM estimate (kohya FLUX.1)", () => {
    const without = planRun(kohyaFlux()).vram.totalGb;
    const withSwap = planRun(kohyaFlux({ hardware: { block_swap: 28 } })).vram.totalGb;
    expect(withSwap).toBeLessThan(without - 4);
  });
  it.each([
    ["the built-in trainer", "block-swap-unsupported", () => contract({ trainer: { name: "diffusers", version: undefined }, hardware: { block_swap: 8 } })],
    ["kohya on SDXL", "block-swap-unsupported", () => contract({ base: { model: "sdxl", quantize: "none" }, trainer: { name: "kohya", version: "v0.10.1" }, hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250 }, hardware: { block_swap: 8 } })],
    ["kohya FLUX.1 over 35", "block-swap-over-max", () => kohyaFlux({ hardware: { block_swap: 40 } })],
  ])("%s -> %s", (_n, rule, make) => {
    expect(errors(lint(make()))).toContain(rule);
  });
  it("ai-toolkit FLUX.1 with a block swap is clean", () => {
    expect(errors(lint(contract({ hardware: { block_swap: 20 } })))).toEqual([]);
  });
});

describe("one consistent VRAM message", () => {
  // Every base x local trainer x ceiling: what the message suggests, applied, passes the VRAM rule.
  const trainers = ["diffusers", "kohya", "ai-toolkit"] as const;
  const cases = BASE_MODEL_IDS.flatMap((base) => trainers.filter((t) => getCompatibility(t, base)?.supported).flatMap((t) => [8, 12, 16, 24, 48].map((gb) => [base, t, gb] as const)));
  it.each(cases)("%s / %s / %d GB", (base, trainer, gb) => {
    const c = contract({ base: { model: base, quantize: "none" }, trainer: { name: trainer, version: trainer === "kohya" ? "v0.10.1" : trainer === "ai-toolkit" ? "0.12.26" : undefined }, hardware: { vram_gb: gb }, limits: { vram_ceiling_gb: gb } });
    const hit = find(lint(c), "vram-below-profile");
    if (!hit) return;
    expect(hit.message).not.toMatch(/smallest known setup/);
    const model = getBaseModel(base)!;
    const fit = fitVram(c, model, model.nativeResolution, gb);
    if (!fit.fits) {
      expect(hit.message).toMatch(/even with|no base precision/);
      return;
    }
    const fixed = contract({ base: { model: base, quantize: fit.quantize }, trainer: c.trainer, hardware: { vram_gb: gb, block_swap: fit.blockSwap }, limits: { vram_ceiling_gb: gb } });
    expect(find(lint(fixed), "vram-below-profile"), hit.message).toBeUndefined();
    expect(hit.message).toContain(`~${fit.estimate.totalGb} GB`);
  });

  it("checkpointing turned off by the contract: when no precision or block swap fits, it suggests checkpointing on, and that fits", () => {
    // ai-toolkit FLUX.1 without checkpointing peaks at ~78 GB measured (knowledge/trainer-speeds.ts): no qfloat8 saves that at 48 GB.
    const over = { trainer: { name: "ai-toolkit", version: "0.12.26" }, base: { model: "flux1-dev", quantize: "none" }, hardware: { vram_gb: 48 }, limits: { vram_ceiling_gb: 48 } } as const;
    const c = contract({ ...over, hyperparameters: { gradient_checkpointing: false } });
    const hit = find(lint(c), "vram-below-profile")!;
    expect(hit.message).toMatch(/with hyperparameters\.gradient_checkpointing: true the same model estimates ~\d/);
    const fit = fitVram(c, getBaseModel("flux1-dev")!, 1024, 48);
    expect(fit).toMatchObject({ fits: true, quantize: "none", gradientCheckpointing: true });
    expect(find(lint(contract({ ...over, hyperparameters: { gradient_checkpointing: true } })), "vram-below-profile")).toBeUndefined();
  });
});

describe("trigger scripts", () => {
  it.each([
    ["wоman", "trigger-mixed-script", "error", /Cyrillic.*U\+043E looks like Latin 'o'.*English word 'woman'/],
    ["txcl\u200b", "trigger-mixed-script", "error", /invisible character\(s\) U\+200B/],
    ["ohwχ", "trigger-mixed-script", "error", /Latin and Greek/],
    ["ѕсаре", "trigger-confusable", "warning", /Cyrillic letters that look like the Latin 'scape'/],
  ])("%s -> %s", (word, rule, severity, message) => {
    const hit = find(lint(contract({ trigger: { word } }), { dataset: dataset(20, () => ({ caption: `${word}, a woman` })) }), rule);
    expect(hit?.severity).toBe(severity);
    expect(hit?.message).toMatch(message);
  });
  it.each(["txcl", "ohwx", "カタカナ", "снег"])("%s passes the script check", (word) => {
    const fs = lint(contract({ trigger: { word } }), { dataset: dataset(20, () => ({ caption: `${word}, a woman` })) });
    expect(fs.map((f) => f.rule)).not.toContain("trigger-mixed-script");
    expect(fs.map((f) => f.rule)).not.toContain("trigger-confusable");
  });
});

describe("severities", () => {
  const rank = { none: 0, info: 0, warning: 1, error: 2 } as const;
  const lrSeverity = (fs: Finding[]) =>
    fs.filter((f) => f.field === "hyperparameters.learning_rate" || f.rule === "recipe-target-mismatch").reduce((m, f) => Math.max(m, rank[f.severity]), 0);
  const combos = [
    ["sdxl", "character"],
    ["sdxl", "style"],
    ["flux1-dev", "character"],
    ["flux1-dev", "style"],
  ] as const;
  it.each(combos)("%s %s: LR severity never drops as the LR moves away from the range", (base, target) => {
    const lrs = Array.from({ length: 41 }, (_, i) => 1e-6 * 10 ** (i / 10)); // 1e-6 .. 1e-2
    const sev = lrs.map((learning_rate) =>
      lrSeverity(lint(contract({ base: { model: base, quantize: base === "sdxl" ? "none" : "fp8" }, trainer: { name: "ai-toolkit", version: "0.12.26" }, target, dataset: { path: "./dataset", expected_images: 20 }, hyperparameters: { learning_rate, steps: 2000, save_every: 250 } }))),
    );
    const best = sev.indexOf(Math.min(...sev));
    for (let i = best; i + 1 < sev.length; i++) expect(sev[i + 1], `lr ${lrs[i + 1]}`).toBeGreaterThanOrEqual(sev[i]!);
    for (let i = best; i > 0; i--) expect(sev[i - 1], `lr ${lrs[i - 1]}`).toBeGreaterThanOrEqual(sev[i]!);
  });
  it("fewer images than the target's minimum is an error, for every target", () => {
    for (const [target, n] of [["character", 6], ["style", 10], ["product", 5]] as const) {
      const fs = lint(contract({ target, dataset: { path: "./dataset", expected_images: n } }), { dataset: dataset(n) });
      expect(errors(fs), target).toContain("dataset-below-minimum");
    }
  });
  it("every rule id the promise rules emit is in RULES", () => {
    const ids = new Set(RULES.map((r) => r.id));
    for (const id of ["failure-path-unset", "failure-continue-on-divergence", "save-every-over-steps", "fal-endpoint-base-mismatch", "block-swap-unsupported", "block-swap-over-max", "trigger-mixed-script", "trigger-confusable", "dataset-below-minimum", "resolution-off-step"]) {
      expect(ids.has(id), id).toBe(true);
    }
  });
});

describe("lint.accept", () => {
  it("turns an accepted judgement rule into a note carrying the reason", () => {
    const c = contract({ hyperparameters: { learning_rate: 1e-5, steps: 2000, save_every: 250 }, lint: { accept: [{ rule: "lr-out-of-range", why: "a toy model learns at other rates" }] } });
    const hit = find(lint(c), "lr-out-of-range");
    expect(hit?.severity).toBe("info");
    expect(hit?.message).toMatch(/^accepted \(lint\.accept: a toy model learns at other rates\)/);
  });
  it("refuses to accept a rule that means the run cannot start", () => {
    expect(() => contract({ lint: { accept: [{ rule: "save-every-over-steps" as never, why: "I know better than this" }] } })).toThrow();
  });
});
