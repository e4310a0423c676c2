import { describe, expect, it } from "vitest";
import { parse as parseToml } from "smol-toml";
import { ContractSchema } from "@loraspec/core/contract/schema.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { TrainRequestSchema } from "@loraspec/core/compile/worker-request.js";
import { resolveSamples, sampleImageCount, sampleStepsOf } from "@loraspec/core/compile/samples.js";
import { SAMPLING } from "@loraspec/core/knowledge/sampling.js";
import { BUILTIN_TRAINER } from "@loraspec/core/knowledge/builtin-trainer.js";
import { BASE_MODEL_IDS } from "@loraspec/core/knowledge/base-models.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { makeContract, PATHS } from "./contract-fixture.js";
import { expectGolden } from "./golden.js";

const SAMPLES = { every: 250, prompts: ["a photo of {trigger}", "{trigger} riding a bike in Paris"], seeds: [42, 7] };

describe("samples: resolution", () => {
  it("is off without samples.every", () => {
    expect(resolveSamples(makeContract({ base: "sdxl", target: "character", trainer: "kohya" }), 1024)).toBeUndefined();
  });

  it("defaults to the rubric's first trigger prompt and first novel scene, seed 42, the base's steps and guidance", () => {
    const c = makeContract({
      base: "flux1-dev", target: "character", trainer: "kohya", path: "/m",
      overrides: { samples: { every: 100 }, validation: { trigger_prompts: ["a photo of {trigger}", "x"], novel_scenes: ["an astronaut on the moon"] } },
    });
    expect(resolveSamples(c, 512)).toEqual({
      every: 100, prompts: ["a photo of txcl", "txcl, an astronaut on the moon"], seeds: [42], steps: 20, guidance: 4, guidanceKind: "embedded", first: false, width: 512, height: 512,
    });
  });

  it("knows every base model's inference steps and guidance, each sourced", () => {
    for (const id of BASE_MODEL_IDS) expect(SAMPLING[id].source.length, id).toBeGreaterThan(10);
  });

  it("renders every N steps and at the end", () => {
    expect(sampleStepsOf(250, 1000)).toEqual([250, 500, 750, 1000]);
    expect(sampleStepsOf(300, 1000)).toEqual([300, 600, 900, 1000]);
    expect(sampleStepsOf(0, 1000)).toEqual([]);
    expect(sampleStepsOf(250, 1000, true)).toEqual([0, 250, 500, 750, 1000]);
  });

  it("counts prompts x seeds at each sampling step", () => {
    const c = makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: { samples: SAMPLES } });
    expect(sampleImageCount(resolveSamples(c, 1024), 1000)).toBe(4 * 2 * 2);
    const first = makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: { samples: { ...SAMPLES, first: true } } });
    expect(sampleImageCount(resolveSamples(first, 1024), 1000)).toBe(5 * 2 * 2);
  });

  it.each(["line\nbreak", "a prompt --w 64"])("refuses a prompt Kohya's prompt file cannot hold: %j", (prompt) => {
    const r = ContractSchema.safeParse({ ...makeContract({ base: "sdxl", target: "character", trainer: "kohya" }), samples: { every: 10, prompts: [prompt] } });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(["samples", "prompts", 0]);
  });
});

describe("samples: compiled", () => {
  it("reaches the built-in trainer's request (sdxl)", () => {
    const c = makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: { trainer: { name: "diffusers" }, samples: { ...SAMPLES, steps: 12, guidance: 5 } } });
    const out = compileDiffusers(c, {}, { datasetDir: "/d", outputDir: "/o" });
    expect(out.request.samples).toEqual({ every: 250, prompts: ["a photo of txcl", "txcl riding a bike in Paris"], seeds: [42, 7], steps: 12, guidance_scale: 5, first: false, width: 1024, height: 1024 });
    expect(() => TrainRequestSchema.parse(out.request)).not.toThrow();
  });

  it("reaches the request of every arch the built-in trainer trains (W_SAMPLES_UNSUPPORTED guards a new arch)", () => {
    const trained = Object.entries(BUILTIN_TRAINER.arches).filter(([, r]) => r.trains).map(([a]) => a);
    expect([...BUILTIN_TRAINER.sampleArches].sort()).toEqual(trained.sort());
    const c = makeContract({ base: "qwen-image", target: "character", trainer: "kohya", overrides: { trainer: { name: "diffusers" }, samples: { every: 10 } } });
    const out = compileDiffusers(c, {}, { datasetDir: "/d", outputDir: "/o" });
    expect(out.request.samples).toMatchObject({ every: 10, steps: 25, guidance_scale: 3 });
    expect(out.warnings.map((w) => w.code)).not.toContain("W_SAMPLES_UNSUPPORTED");
  });

  it.each([
    ["sdxl", undefined],
    ["flux1-dev", "/models/flux1-dev"],
  ] as const)("Kohya %s: --sample_every_n_steps, a --sample_prompts file with --w --h --d --s and the guidance flag", (base, path) => {
    const c = makeContract({ base, target: "character", trainer: "kohya", path, overrides: { samples: SAMPLES } });
    const out = compileKohya(c, {}, PATHS);
    const args = parseToml(out.argsToml) as Record<string, Record<string, unknown>>;
    const file = out.files.find((f) => f.name === "sample_prompts.txt")!;
    expect(args.sample_arguments).toEqual({
      sample_every_n_steps: 250,
      sample_prompts: file.path,
      ...(base === "sdxl" ? { sample_sampler: "euler" } : {}),
    });
    expectGolden(`kohya/samples-${base}.sample_prompts.txt`, file.content);
    const lines = file.content.split("\n").filter((l) => l && !l.startsWith("#"));
    expect(lines).toHaveLength(4);
    expect(lines[0]).toContain(base === "sdxl" ? "--l 6" : "--g 4");
  });

  it("samples.first: the built-in trainer's first, Kohya's --sample_at_first, ai-toolkit's first sample kept", () => {
    const overrides = { samples: { ...SAMPLES, first: true } };
    const d = compileDiffusers(makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides: { ...overrides, trainer: { name: "diffusers" } } }), {}, { datasetDir: "/d", outputDir: "/o" });
    expect(d.request.samples?.first).toBe(true);
    const k = parseToml(compileKohya(makeContract({ base: "sdxl", target: "character", trainer: "kohya", overrides }), {}, PATHS).argsToml) as Record<string, Record<string, unknown>>;
    expect(k.sample_arguments!.sample_at_first).toBe(true);
    const train = (c: ReturnType<typeof makeContract>) => ((compileAiToolkit(c, {}, PATHS).job.config as { process: Array<{ train: Record<string, unknown> }> }).process[0]!.train);
    expect(train(makeContract({ base: "sdxl", target: "character", trainer: "ai-toolkit", overrides })).skip_first_sample).toBe(false);
    expect(train(makeContract({ base: "sdxl", target: "character", trainer: "ai-toolkit", overrides: { samples: SAMPLES } })).skip_first_sample).toBe(true);
  });

  it("Kohya without samples writes no sample options or file", () => {
    const out = compileKohya(makeContract({ base: "sdxl", target: "character", trainer: "kohya" }), {}, PATHS);
    expect(out.argsToml).not.toContain("sample_");
    expect(out.files.map((f) => f.name)).toEqual(["dataset.toml", "args.toml"]);
  });

  it("ai-toolkit: a sample block of prompt x seed items, every N steps, the base's steps and guidance", () => {
    const c = makeContract({ base: "flux1-dev", target: "character", trainer: "ai-toolkit", overrides: { samples: { ...SAMPLES, steps: 8 } } });
    const out = compileAiToolkit(c, {}, PATHS);
    const process = (out.job.config as { process: Array<Record<string, unknown>> }).process[0]!;
    expect(process.sample).toEqual({
      sampler: "flowmatch", neg: "", sample_every: 250, width: 1024, height: 1024, guidance_scale: 4, sample_steps: 8,
      samples: [
        { prompt: "a photo of txcl", seed: 42 }, { prompt: "a photo of txcl", seed: 7 },
        { prompt: "txcl riding a bike in Paris", seed: 42 }, { prompt: "txcl riding a bike in Paris", seed: 7 },
      ],
    });
  });

  it("fal: each samples field set is a trainer-ignores-field finding naming it", () => {
    const c = makeContract({ base: "flux1-dev", target: "character", trainer: "fal", overrides: { samples: { ...SAMPLES, steps: 8, guidance: 3, first: true } } });
    const fields = lintContract(c).filter((f) => f.rule === "trainer-ignores-field" && f.field?.startsWith("samples.")).map((f) => f.field);
    expect(fields.sort()).toEqual(["samples.every", "samples.first", "samples.guidance", "samples.prompts", "samples.seeds", "samples.steps"]);
  });
});
