import { describe, expect, it } from "vitest";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml } from "yaml";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { TrainRequestSchema } from "@loraspec/core/compile/worker-request.js";
import { lintRegularisers } from "@loraspec/core/lint/regulariser-rules.js";
import { RULES } from "@loraspec/core/lint/finding.js";
import { TIMESTEP_SAMPLINGS } from "@loraspec/core/knowledge/regularisers.js";
import type { BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import type { ContractInput } from "@loraspec/core/contract/schema.js";
import { makeContract, PATHS } from "./contract-fixture.js";

type Hp = NonNullable<ContractInput["hyperparameters"]>;
const FLUX_PATH = "/models/flux1-dev";

function contract(trainer: "kohya" | "ai-toolkit" | "fal", base: BaseModelId, hp: Hp, captions: "tags" | "natural" = base === "sdxl" ? "tags" : "natural") {
  return makeContract({
    base,
    target: "character",
    trainer,
    path: trainer === "kohya" && base === "flux1-dev" ? FLUX_PATH : undefined,
    overrides: { hyperparameters: { learning_rate: 1e-4, steps: 1500, save_every: 250, ...hp }, captions: { style: captions } },
  });
}

function diffusersRequest(base: BaseModelId, hp: Hp) {
  const c = { ...contract("kohya", base, hp), trainer: { name: "diffusers" as const } };
  return compileDiffusers(c, {}, { datasetDir: PATHS.datasetDir, outputDir: PATHS.outputDir }).request;
}

describe("regularisers compile to each trainer", () => {
  it("built-in: every field in the request, SDXL levers only on SDXL, flow sampling only on flow models", () => {
    const sdxl = diffusersRequest("sdxl", { caption_dropout: 0.1, noise_offset: 0.05, min_snr_gamma: 5, ema: 0.99, timestep_sampling: "shift" });
    expect(sdxl).toMatchObject({ caption_dropout: 0.1, noise_offset: 0.05, min_snr_gamma: 5, ema_decay: 0.99, timestep_sampling: "uniform", shuffle_tags: false });
    expect(TrainRequestSchema.safeParse(sdxl).success).toBe(true);
    const flux = diffusersRequest("flux1-dev", { noise_offset: 0.05, min_snr_gamma: 5, timestep_sampling: "logit_normal" });
    expect(flux).toMatchObject({ noise_offset: 0, min_snr_gamma: null, ema_decay: null, timestep_sampling: "logit_normal" });
    const c = { ...contract("kohya", "flux1-dev", { noise_offset: 0.05 }), trainer: { name: "diffusers" as const } };
    const { warnings } = compileDiffusers(c, {}, { datasetDir: PATHS.datasetDir, outputDir: PATHS.outputDir });
    expect(warnings.filter((w) => w.code === "W_REGULARISER_NOT_APPLIED").map((w) => w.field)).toEqual(["hyperparameters.noise_offset"]);
  });

  it("kohya: dataset and args keys the pinned scripts accept", () => {
    const sdxl = compileKohya(contract("kohya", "sdxl", { caption_dropout: 0.1, shuffle_tags: true, cache_text_encoder_outputs: false, noise_offset: 0.05, min_snr_gamma: 5 }), {}, PATHS);
    const general = (parseToml(sdxl.datasetToml) as { general: Record<string, unknown> }).general;
    expect(general).toMatchObject({ shuffle_caption: true, keep_tokens: 1, caption_dropout_rate: 0.1 });
    const training = (parseToml(sdxl.argsToml) as { training_arguments: Record<string, unknown> }).training_arguments;
    expect(training).toMatchObject({ noise_offset: 0.05, min_snr_gamma: 5 });
    const words: Record<string, Record<string, unknown>> = {
      uniform: { timestep_sampling: "uniform" },
      sigmoid: { timestep_sampling: "sigmoid", sigmoid_scale: 1 },
      logit_normal: { timestep_sampling: "sigma", weighting_scheme: "logit_normal" },
      shift: { timestep_sampling: "flux_shift" },
    };
    for (const sampling of TIMESTEP_SAMPLINGS) {
      const flux = compileKohya(contract("kohya", "flux1-dev", { timestep_sampling: sampling }), {}, PATHS);
      expect((parseToml(flux.argsToml) as { training_arguments: Record<string, unknown> }).training_arguments).toMatchObject(words[sampling]!);
    }
  });

  it("ai-toolkit: dataset keys, timestep_type and ema_config", () => {
    const out = compileAiToolkit(contract("ai-toolkit", "flux1-dev", { caption_dropout: 0.05, timestep_sampling: "shift", ema: 0.99 }), {}, PATHS);
    const process = (parseYaml(out.jobYaml) as { config: { process: Array<{ datasets: Array<Record<string, unknown>>; train: Record<string, unknown> }> } }).config.process[0]!;
    expect(process.datasets[0]).toMatchObject({ caption_dropout_rate: 0.05, shuffle_tokens: false });
    expect(process.train).toMatchObject({ timestep_type: "shift", ema_config: { use_ema: true, ema_decay: 0.99 } });
    const sdxl = compileAiToolkit(contract("ai-toolkit", "sdxl", { noise_offset: 0.1, min_snr_gamma: 5 }), {}, PATHS);
    expect((parseYaml(sdxl.jobYaml) as { config: { process: Array<{ train: Record<string, unknown> }> } }).config.process[0]!.train).toMatchObject({ noise_offset: 0.1, min_snr_gamma: 5 });
  });
});

describe("the plan with shuffled captions", () => {
  it("turns the CUDA graph off, saying why", () => {
    const c = { ...contract("kohya", "sdxl", { shuffle_tags: true, cache_text_encoder_outputs: false, optimizer: "adamw" }), trainer: { name: "diffusers" as const } };
    const out = compileDiffusers({ ...c, hardware: { ...c.hardware, gpu: "H200" } }, {}, { datasetDir: PATHS.datasetDir, outputDir: PATHS.outputDir });
    expect(out.request.cuda_graphs).toBe(false);
    expect(out.choices.find((x) => x.setting === "cuda_graphs")?.why).toContain("shuffle_tags");
  });
});

describe("regulariser lint", () => {
  const rules = (trainer: "kohya" | "ai-toolkit" | "fal", base: BaseModelId, hp: Hp, captions?: "tags" | "natural") =>
    lintRegularisers(contract(trainer, base, hp, captions)).map((f) => `${f.rule} ${f.field}`);

  it("every rule it emits is documented", () => {
    const ids = new Set(RULES.map((r) => r.id));
    const all = [...rules("kohya", "sdxl", { shuffle_tags: true, caption_dropout: 0.1, ema: 0.9 }, "natural"), ...rules("fal", "flux1-dev", { ema: 0.9 })];
    expect(all.every((r) => ids.has(r.split(" ")[0]!))).toBe(true);
  });

  it("shuffling with cached text-encoder outputs is an error naming the field (caption dropout too, for kohya)", () => {
    expect(rules("ai-toolkit", "qwen-image", { shuffle_tags: true }, "tags")).toContain("shuffle-tags-cached-text hyperparameters.shuffle_tags");
    expect(rules("ai-toolkit", "sdxl", { shuffle_tags: true })).toEqual([]); // its SDXL profile keeps the encoders
    // FLUX.1 caches like every arch at 27a03a9 (ai-toolkit-profiles.ts): a shuffle would be encoded once
    expect(rules("ai-toolkit", "flux1-dev", { shuffle_tags: true }, "tags")).toContain("shuffle-tags-cached-text hyperparameters.shuffle_tags");
    expect(rules("ai-toolkit", "flux1-dev", { shuffle_tags: true, cache_text_encoder_outputs: false }, "tags")).toEqual([]);
    expect(rules("kohya", "sdxl", { shuffle_tags: true })).toContain("shuffle-tags-cached-text hyperparameters.shuffle_tags");
    expect(rules("kohya", "sdxl", { caption_dropout: 0.1 })).toContain("shuffle-tags-cached-text hyperparameters.caption_dropout");
    expect(rules("ai-toolkit", "sdxl", { caption_dropout: 0.1 })).toEqual([]);
    expect(rules("kohya", "sdxl", { shuffle_tags: true, caption_dropout: 0.1, cache_text_encoder_outputs: false })).toEqual([]);
    expect(rules("kohya", "sdxl", { shuffle_tags: true, cache_text_encoder_outputs: false }, "natural")).toEqual(["regulariser-unsupported hyperparameters.shuffle_tags"]);
  });

  it("names a lever of the other model family, kohya's missing EMA and every regulariser on fal", () => {
    expect(rules("ai-toolkit", "flux1-dev", { noise_offset: 0.1, min_snr_gamma: 5 })).toEqual([
      "regulariser-unsupported hyperparameters.noise_offset",
      "regulariser-unsupported hyperparameters.min_snr_gamma",
    ]);
    expect(rules("ai-toolkit", "sdxl", { timestep_sampling: "sigmoid" })).toEqual(["regulariser-unsupported hyperparameters.timestep_sampling"]);
    expect(rules("kohya", "flux1-dev", { ema: 0.99 })).toEqual(["regulariser-unsupported hyperparameters.ema"]);
    expect(rules("ai-toolkit", "flux1-dev", { ema: 0.99, timestep_sampling: "shift" })).toEqual([]);
    expect(rules("fal", "flux1-dev", { caption_dropout: 0.1, ema: 0.99 })).toEqual([
      "regulariser-unsupported hyperparameters.caption_dropout",
      "regulariser-unsupported hyperparameters.ema",
    ]);
  });
});
