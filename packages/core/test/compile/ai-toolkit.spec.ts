import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import type { BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { makeContract, PATHS, TARGETS } from "./contract-fixture.js";
import { expectGolden } from "./golden.js";

const ARCH: Array<[BaseModelId, string]> = [
  ["sdxl", "sdxl"],
  ["flux1-dev", "flux"],
  ["flux1-schnell", "flux"],
  ["flux2-dev", "flux2"],
  ["flux2-klein-4b", "flux2_klein_4b"],
  ["flux2-klein-9b", "flux2_klein_9b"],
  ["qwen-image", "qwen_image"],
  ["zimage-turbo", "zimage:turbo"],
];

type Job = { job: string; config: { name: string; process: Array<Record<string, any>> } };

describe("compileAiToolkit goldens", () => {
  for (const [base] of ARCH) {
    for (const target of TARGETS) {
      it(`${base} x ${target}`, () => {
        const out = compileAiToolkit(makeContract({ base, target, trainer: "ai-toolkit" }), {}, PATHS);
        expectGolden(`ai-toolkit/${base}-${target}.job.yaml`, out.jobYaml);
      });
    }
  }
});

describe("compileAiToolkit", () => {
  it.each(ARCH)("%s -> model.arch %s, and the YAML round-trips to the job object", (base, arch) => {
    const out = compileAiToolkit(makeContract({ base, target: "character", trainer: "ai-toolkit" }), {}, PATHS);
    const job = parseYaml(out.jobYaml) as Job;
    expect(job).toEqual(out.job);
    const p = job.config.process[0]!;
    expect(p.model.arch).toBe(arch);
    expect(p.sample.sampler).toBe(p.train.noise_scheduler);
    // Without it ai-toolkit's default neg (False) crashed the first sample of a real SDXL run.
    expect(p.sample.neg).toBe("");
    // 1500 steps / save_every 250: the plan's 6 checkpoints, all kept (plan/checkpoints.ts)
    expect(p.save).toMatchObject({ save_every: 250, max_step_saves_to_keep: 6 });
    expect(p.datasets[0]).toMatchObject({ folder_path: PATHS.datasetDir, caption_ext: "txt" });
    expect(p.network).toEqual({ type: "lora", linear: 16, linear_alpha: 16 });
    expect(p.train).toMatchObject({ steps: 1500, lr: 1e-4, gradient_accumulation: 1 });
    expect(p.train).not.toHaveProperty("gradient_accumulation_steps");
  });

  it("renders nothing with samples off: train.disable_sampling, no prompts (it once rendered the rubric at every save)", () => {
    const out = compileAiToolkit(makeContract({ base: "flux1-dev", target: "character", trainer: "ai-toolkit" }), {}, PATHS);
    const p = (out.job as unknown as Job).config.process[0]!;
    expect(p.train).toMatchObject({ disable_sampling: true });
    expect(p.sample).toEqual({ sampler: "flowmatch", neg: "" });
    expect(out.outputs.samples).toBeUndefined();
    expect(p.trigger_word).toBe("txcl");
  });

  it.each([
    ["none", { quantize: false, quantize_te: false }],
    ["fp8", { quantize: true, qtype: "qfloat8", quantize_te: true }],
  ] as const)("base.quantize %s -> model %o", (quantize, expected) => {
    const contract = makeContract({ base: "flux1-dev", target: "character", trainer: "ai-toolkit", overrides: { base: { model: "flux1-dev", quantize } } });
    expect((compileAiToolkit(contract, {}, PATHS).job as unknown as Job).config.process[0]!.model).toMatchObject(expected);
  });

  it.each([
    [undefined, undefined],
    [0, undefined],
    [19, { layer_offloading: true, layer_offloading_transformer_percent: 0.33 }],
    [57, { layer_offloading: true, layer_offloading_transformer_percent: 1 }],
  ] as const)("hardware.block_swap %s -> model %o", (blockSwap, expected) => {
    const contract = makeContract({ base: "flux1-dev", target: "character", trainer: "ai-toolkit", overrides: { hardware: { kind: "local", block_swap: blockSwap } } });
    const model = (compileAiToolkit(contract, {}, PATHS).job as unknown as Job).config.process[0]!.model;
    if (expected) expect(model).toMatchObject(expected);
    else expect(model.layer_offloading).toBeUndefined();
  });

  it("runs python run.py <job.yaml> from the checkout", () => {
    const out = compileAiToolkit(makeContract({ base: "sdxl", target: "style", trainer: "ai-toolkit" }), {}, PATHS);
    expect(out.command).toEqual([`${PATHS.venvDir}/bin/python`, `${PATHS.trainerDir}/run.py`, `${PATHS.configDir}/job.yaml`]);
    expect(out.outputs.lora).toBe(`${PATHS.outputDir}/txcl-style/txcl-style.safetensors`);
  });

  it("refuses sd35-large with E_TRAINER_UNSUPPORTED", () => {
    try {
      compileAiToolkit(makeContract({ base: "sd35-large", target: "style", trainer: "ai-toolkit" }), {}, PATHS);
      expect.unreachable();
    } catch (error) {
      expect(isLoraspecError(error) && error.code).toBe("E_TRAINER_UNSUPPORTED");
    }
  });
});

describe("compileAiToolkit and the user's dataset folder", () => {
  it.each([
    [false, { cache_latents: true }, [".aitk_size.json"]],
    [true, { cache_latents_to_disk: true }, [".aitk_size.json", "_latent_cache/"]],
  ] as const)("datasetWritable %s", (writable, cache, writes) => {
    const out = compileAiToolkit(makeContract({ base: "sdxl", target: "character", trainer: "ai-toolkit" }), {}, { ...PATHS, datasetWritable: writable });
    const dataset = (out.job as unknown as Job).config.process[0]!.datasets[0];
    expect(dataset).toMatchObject(cache);
    expect(Object.keys(dataset)).not.toContain(writable ? "cache_latents" : "cache_latents_to_disk");
    expect(out.writesIntoDataset).toEqual(writes);
  });
});

it("flux2 caches text embeddings, which ai-toolkit writes beside the images", () => {
  const out = compileAiToolkit(makeContract({ base: "flux2-dev", target: "character", trainer: "ai-toolkit" }), {}, PATHS);
  expect(out.writesIntoDataset).toEqual([".aitk_size.json", "_text_embedding_cache/"]);
});

// ai-toolkit's text-embedding cache is arch-independent at 27a03a9 (FLUX.1 included); SDXL's profile keeps it off.
it.each([
  ["flux1-dev", true, true],
  ["flux1-schnell", true, true],
  ["flux1-dev", false, false],
  ["sdxl", true, false],
] as const)("%s with cache_text_encoder_outputs %s -> dataset cache_text_embeddings %s", (base, cacheTe, cached) => {
  const contract = makeContract({ base, target: "character", trainer: "ai-toolkit", overrides: { hyperparameters: { learning_rate: 1e-4, steps: 1500, rank: 16, save_every: 250, cache_text_encoder_outputs: cacheTe } } });
  const out = compileAiToolkit(contract, {}, PATHS);
  const dataset = (out.job as unknown as Job).config.process[0]!.datasets[0];
  expect(dataset.cache_text_embeddings === true).toBe(cached);
  expect(out.writesIntoDataset.includes("_text_embedding_cache/")).toBe(cached);
});

describe("regularisation images (dataset.reg_path)", () => {
  it("become a second dataset with is_reg, one repeat, the same caption settings", () => {
    const contract = makeContract({ base: "sdxl", target: "character", trainer: "ai-toolkit" });
    const out = compileAiToolkit(contract, {}, { ...PATHS, regDir: "/project/.loraspec/runs/r1/reg" });
    const p = (out.job as unknown as Job).config.process[0]!;
    expect(p.datasets).toHaveLength(2);
    expect(p.datasets[0]).not.toHaveProperty("is_reg");
    expect(p.datasets[1]).toMatchObject({ folder_path: "/project/.loraspec/runs/r1/reg", is_reg: true, num_repeats: 1, caption_ext: p.datasets[0].caption_ext });
    expect(compileAiToolkit(contract, {}, PATHS).jobYaml).not.toContain("is_reg");
  });
});
