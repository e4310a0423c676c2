import { describe, expect, it } from "vitest";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { TrainRequestSchema } from "@loraspec/core/compile/worker-request.js";
import { BUILTIN_TRAINER, builtinArchOf } from "@loraspec/core/knowledge/builtin-trainer.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { LOSS_SPIKE_RULE } from "@loraspec/core/knowledge/loss-spike.js";
import type { BaseModelId } from "@loraspec/core/knowledge/base-models.js";
import { makeContract, TARGETS } from "./contract-fixture.js";
import { expectGolden } from "./golden.js";

const PATHS = { datasetDir: "/project/.loraspec/runs/r1/dataset", outputDir: "/project/.loraspec/runs/r1/out" };
const supported = (Object.keys(BUILTIN_TRAINER.bases) as BaseModelId[]).filter((id) => builtinArchOf(id).record.trains);
const unsupported = (Object.keys(BUILTIN_TRAINER.bases) as BaseModelId[]).filter((id) => !builtinArchOf(id).record.trains);

function contract(base: BaseModelId, target: (typeof TARGETS)[number], overrides = {}) {
  return makeContract({ base, target, trainer: "kohya", overrides: { trainer: { name: "diffusers" }, ...overrides } });
}

describe("compileDiffusers goldens", () => {
  for (const base of supported) {
    for (const target of TARGETS) {
      it(`${base} x ${target}`, () => {
        const out = compileDiffusers(contract(base, target), {}, PATHS, { contractHash: "sha256:0123" });
        expectGolden(`diffusers/${base}-${target}.request.json`, `${JSON.stringify(out.request, null, 2)}\n`);
      });
    }
  }
});

describe("compileDiffusers", () => {
  it.each([
    ["sdxl", "sdxl", 1],
    ["flux1-dev", "flux1", 3.5],
    ["flux1-schnell", "flux1", 1],
    ["flux2-klein-4b", "flux2-klein", 1],
    ["flux2-klein-9b", "flux2-klein", 1],
    ["zimage-turbo", "zimage", 1],
    ["qwen-image", "qwen-image", 1],
  ] as const)("%s trains as worker arch %s (guidance %s; 1 = none)", (base, arch, guidance) => {
    const out = compileDiffusers(contract(base, "character"), { steps: 700, learningRate: 2e-4 }, PATHS);
    expect(out.request.arch).toBe(arch);
    expect(out.request.guidance_scale).toBe(guidance);
    expect(out.request.steps).toBe(700);
    expect(out.request.learning_rate).toBe(2e-4);
    expect(out.request.trigger_word).toBe("txcl");
  });

  it.each(unsupported)("refuses %s with E_TRAINER_UNSUPPORTED", (base) => {
    try {
      compileDiffusers(contract(base, "style"), {}, PATHS);
      expect.unreachable();
    } catch (error) {
      expect(isLoraspecError(error) && error.code).toBe("E_TRAINER_UNSUPPORTED");
    }
  });

  it.each([
    [{ hyperparameters: { learning_rate: 1e-4, steps: 100, optimizer: "lion8bit" } }, "hyperparameters.optimizer"],
    [{ base: { model: "flux1-dev", quantize: "nf4" } }, "base.quantize"],
    [{ base: { model: "flux1-dev", quantize: "int8" } }, "base.quantize"],
  ])("refuses what the worker cannot do (%j)", (overrides, field) => {
    try {
      compileDiffusers(contract("flux1-dev", "character", overrides), {}, PATHS);
      expect.unreachable();
    } catch (error) {
      expect(isLoraspecError(error) && error.code).toBe("E_TRAINER_UNSUPPORTED");
      expect(isLoraspecError(error) && error.field).toBe(field);
    }
  });

  it("says out loud what it does not honour and drops fallbacks the worker lacks", () => {
    const c = contract("sdxl", "style", {
      dataset: { path: "./dataset", aspect: "buckets", crop: "attention" },
      failure: { on_divergence: "rollback", on_oom: "fallback", oom_fallbacks: ["quantize_base", "gradient_checkpointing", "cpu_offload"] },
    });
    const out = compileDiffusers(c, {}, PATHS);
    expect(out.warnings.map((w) => w.code).sort()).toEqual(["W_CENTER_CROP", "W_DIVERGENCE_STOPS", "W_OOM_FALLBACK_UNSUPPORTED"]);
    expect(out.request.failure.oom_fallbacks).toEqual(["quantize_base", "gradient_checkpointing"]);
    expect(out.warnings.find((w) => w.code === "W_OOM_FALLBACK_UNSUPPORTED")?.message).toMatch(/cpu_offload/);
  });

  it("sends the loss-spike rule whole: the contract's factor (its default the record's) and the record's windows", () => {
    const windows = { loss_spike_recent_steps: LOSS_SPIKE_RULE.recentSteps, loss_spike_baseline_steps: LOSS_SPIKE_RULE.baselineSteps, loss_spike_first_step: LOSS_SPIKE_RULE.firstStep };
    expect(compileDiffusers(contract("sdxl", "character"), {}, PATHS).request.failure).toMatchObject({ loss_spike_factor: LOSS_SPIKE_RULE.factor, ...windows });
    const set = compileDiffusers(contract("flux1-dev", "character", { failure: { loss_spike_factor: 20 } }), {}, PATHS).request.failure;
    expect(set).toMatchObject({ loss_spike_factor: 20, ...windows });
    // the worker (train/dev_request.py) reads the same record from schema/builtin-trainer.json
    expect(BUILTIN_TRAINER.lossSpike).toBe(LOSS_SPIKE_RULE);
    // a baseline step exists when the rule is first judged (the worker never averages an empty baseline)
    expect(LOSS_SPIKE_RULE.firstStep).toBeGreaterThan(LOSS_SPIKE_RULE.recentSteps);
    expect(LOSS_SPIKE_RULE.source).toMatch(/d53cfed/);
  });

  it("passes an fp8 base through", () => {
    const out = compileDiffusers(contract("flux1-dev", "character", { base: { model: "flux1-dev", quantize: "fp8" } }), {}, PATHS);
    expect(out.request.quantize).toBe("fp8");
  });

  it.each([
    // [base, VRAM ceiling GB, optimizer, steps] -> gradient_checkpointing, compile, cuda_graphs, quantize
    ["flux1-dev", 80, "adamw8bit", 1500, false, true, false, "none"],
    ["flux1-dev", 40, "adamw8bit", 1500, true, true, false, "none"],
    ["flux1-dev", 24, "adamw8bit", 1500, true, true, false, "fp8"],
    ["flux1-dev", 80, "adamw8bit", 200, false, false, false, "none"],
    ["flux2-klein-4b", 24, "adamw8bit", 1500, false, true, false, "none"],
    ["flux2-klein-9b", 24, "adamw8bit", 1500, true, true, false, "none"],
    ["sdxl", 24, "adamw", 1500, false, false, true, "none"],
    ["sdxl", 24, "adamw8bit", 1500, false, false, false, "none"],
    ["sdxl", 12, "adamw", 1500, true, false, false, "none"],
    ["qwen-image", 80, "adamw8bit", 1500, true, false, false, "none"],
  ] as const)("%s under %i GB with %s for %i steps: checkpointing %s, compile %s, CUDA graph %s, base %s", (base, gb, optimizer, steps, ckpt, compile, graphs, quantize) => {
    const c = contract(base, "character", {
      hardware: { kind: "local", gpu: "H200", vram_gb: gb },
      hyperparameters: { learning_rate: 1e-4, steps, rank: 16, save_every: 250, optimizer },
    });
    const out = compileDiffusers(c, {}, PATHS);
    expect([out.request.gradient_checkpointing, out.request.compile, out.request.cuda_graphs, out.request.quantize]).toEqual([ckpt, compile, graphs, quantize]);
    expect(out.choices.map((x) => x.setting)).toContain("gradient_checkpointing");
    for (const choice of out.choices) expect(choice.source.length).toBeGreaterThan(0);
  });

  it("keeps checkpointing on without a VRAM ceiling, and what the contract says", () => {
    const none = contract("flux1-dev", "character", { hardware: { kind: "local", gpu: "H200" } });
    expect(compileDiffusers(none, {}, PATHS).request.gradient_checkpointing).toBe(true);
    const off = contract("flux1-dev", "character", {
      hardware: { kind: "local", gpu: "RTX 4090", vram_gb: 24 },
      hyperparameters: { learning_rate: 1e-4, steps: 1500, gradient_checkpointing: false },
    });
    const out = compileDiffusers(off, {}, PATHS);
    expect(out.request.gradient_checkpointing).toBe(false);
    expect(out.choices.find((x) => x.setting === "gradient_checkpointing")?.why).toMatch(/contract/);
  });

  it.each([
    // [gpu, vram, fp8_matmul in the request, quantize]: FLUX.1 compiled (1500 steps repay it)
    ["H200", 141, true, "none"],
    ["H100", 24, true, "fp8"], // the 24 GB recipe on a Hopper: fp8 base + fp8 GEMM forward (0.668 -> 0.614 s/step)
    ["RTX 4090", 24, false, "fp8"], // Ada: float8 tensor cores, but torch's row-wise fp8 GEMM is Hopper-only
    ["A100", 80, false, "none"], // Ampere: no float8 tensor cores
    ["RTX 3090", 24, false, "fp8"],
    [undefined, 80, true, "none"], // no card named: core decides as for the H200; the worker refuses it (W_FP8_MATMUL_UNAVAILABLE) where its card cannot
  ] as const)("fp8 GEMMs for FLUX.1 on %s (%i GB): %s", (gpu, gb, want, quantize) => {
    const c = contract("flux1-dev", "character", {
      hardware: { kind: "local", vram_gb: gb, ...(gpu ? { gpu } : {}) },
      hyperparameters: { learning_rate: 1e-4, steps: 1500, rank: 16, save_every: 250 },
    });
    const out = compileDiffusers(c, {}, PATHS);
    expect(out.request.quantize).toBe(quantize);
    expect(out.request.compile).toBe(true);
    expect(out.request.fp8_matmul).toBe(want);
    const why = out.choices.find((x) => x.setting === "fp8_matmul")?.why ?? "";
    if (want === true) expect(why).toMatch(/^on: 0\.\d+ -> 0\.\d+ s\/step on the H200/);
    if (want === false) expect(why).toMatch(gpu === "RTX 4090" ? /row-wise scaled fp8 GEMM does not run/ : /no float8 tensor cores/);
  });

  it("never asks for fp8 GEMMs where they are not measured (SDXL), cannot run (A100) or without compile", () => {
    const klein = (gpu: string) => compileDiffusers(contract("flux2-klein-9b", "character", { hardware: { kind: "local", gpu, vram_gb: 141 }, hyperparameters: { learning_rate: 1e-4, steps: 1500 } }), {}, PATHS);
    // klein's fp8 GEMM rows: with FlashAttention-4 on the H200 (its pair is FA4's); the A100 has no float8 tensor cores
    expect([klein("H200").request.compile, klein("H200").request.fp8_matmul, klein("H200").request.attention]).toEqual([true, true, "fa4"]);
    expect(klein("H200").choices.find((x) => x.setting === "fp8_matmul")?.why).toMatch(/^on: 0\.33 -> 0\.26 s\/step/);
    expect([klein("A100 80GB").request.attention, klein("A100 80GB").request.fp8_matmul]).toEqual(["sdpa", false]);
    expect(klein("A100 80GB").choices.find((x) => x.setting === "fp8_matmul")?.why).toMatch(/no float8 tensor cores/);
    const short = compileDiffusers(contract("flux1-dev", "character", { hardware: { kind: "local", gpu: "H200", vram_gb: 141 }, hyperparameters: { learning_rate: 1e-4, steps: 50, save_every: 50 } }), {}, PATHS);
    expect([short.request.compile, short.request.fp8_matmul]).toEqual([false, false]);
    const sdxl = compileDiffusers(contract("sdxl", "character", { hardware: { kind: "local", gpu: "H200", vram_gb: 141 }, hyperparameters: { learning_rate: 1e-4, steps: 1500 } }), {}, PATHS);
    expect(sdxl.request.fp8_matmul).toBe(false);
  });

  it("decides compile and the CUDA graph in core when no known CUDA GPU is named (the worker only refuses what its device cannot run)", () => {
    const c = (gpu?: string) =>
      contract("sdxl", "character", {
        hardware: { kind: "local", vram_gb: 48, ...(gpu ? { gpu } : {}) },
        hyperparameters: { learning_rate: 1e-4, steps: 1500, optimizer: "adamw" },
      });
    expect(compileDiffusers(c("H200"), {}, PATHS).request.cuda_graphs).toBe(true);
    const unknown = compileDiffusers(c(), {}, PATHS);
    expect([unknown.request.cuda_graphs, unknown.request.channels_last, unknown.request.compile]).toEqual([true, true, false]);
    expect(unknown.choices.find((x) => x.setting === "cuda_graphs")?.why).toMatch(/the worker turns it off, with a coded warning/);
  });

  it("trains on every GPU of the host as data-parallel processes, without the CUDA graph", () => {
    const c = (gpus: number) =>
      contract("sdxl", "character", {
        hardware: { kind: "local", gpu: "H200", vram_gb: 141, gpus },
        hyperparameters: { learning_rate: 1e-4, steps: 1500, optimizer: "adamw" },
      });
    const one = compileDiffusers(c(1), {}, PATHS);
    expect(one.request.num_processes).toBe(1);
    expect(one.request.cuda_graphs).toBe(true);
    const two = compileDiffusers(c(2), {}, PATHS);
    expect(two.request.num_processes).toBe(2);
    expect(two.request.cuda_graphs).toBe(false);
    expect(two.choices.find((x) => x.setting === "cuda_graphs")?.why).toMatch(/2 GPUs/);
  });

  it("sends several hosts to the worker's torchrun launch (hardware.nodes, rendezvous, node_rank), and no nodes for one host", () => {
    const c = (hardware: Record<string, unknown>) =>
      contract("sdxl", "character", { hardware: { kind: "local", gpu: "H200", vram_gb: 141, gpus: 8, ...hardware }, hyperparameters: { learning_rate: 1e-4, steps: 1500, optimizer: "adamw" } });
    const two = compileDiffusers(c({ nodes: 2, rendezvous: "10.0.0.1:29500", node_rank: 1 }), {}, PATHS).request;
    expect([two.num_processes, two.nodes]).toEqual([8, { count: 2, rank: 1, endpoint: "10.0.0.1:29500" }]);
    expect(TrainRequestSchema.safeParse(two).success).toBe(true);
    expect(compileDiffusers(c({}), {}, PATHS).request).not.toHaveProperty("nodes");
    // one GPU on each of two hosts is still an all-reduce between steps: no CUDA graph
    const graph = (hardware: Record<string, unknown>) => compileDiffusers(c({ gpus: 1, ...hardware }), {}, PATHS).request.cuda_graphs;
    expect([graph({}), graph({ nodes: 2, rendezvous: "n0:29500" })]).toEqual([true, false]);
  });

  it("explains why compile is off for a short run", () => {
    const c = contract("flux1-dev", "character", { hardware: { kind: "local", gpu: "H200", vram_gb: 141 }, hyperparameters: { learning_rate: 1e-4, steps: 100 } });
    expect(compileDiffusers(c, {}, PATHS).choices.find((x) => x.setting === "compile")?.why).toMatch(/too short to repay.*41 s first-compile warm-up/);
  });

  it("compiles SDXL's blocks under the CUDA graph only when the run repays the first compile (measured graph vs graph + compile)", () => {
    const c = (steps: number) =>
      contract("sdxl", "character", { hardware: { kind: "local", gpu: "H200", vram_gb: 141 }, hyperparameters: { learning_rate: 1e-4, steps, optimizer: "adamw" } });
    const short = compileDiffusers(c(2000), {}, PATHS);
    expect([short.request.cuda_graphs, short.request.compile]).toEqual([true, false]);
    expect(short.choices.find((x) => x.setting === "compile")?.why).toMatch(/too short to repay.*under the CUDA graph/);
    const long = compileDiffusers(c(20000), {}, PATHS);
    expect([long.request.cuda_graphs, long.request.compile, long.request.channels_last]).toEqual([true, true, true]);
    // timed as the run computes its LoRA (bf16 on SDXL: knowledge/lora-compute.ts), from those rows
    expect(long.request.lora_compute).toBe("bf16");
    expect(long.choices.find((x) => x.setting === "compile")?.why).toMatch(/^on: 20000 steps x 0\.0\d+ s saved \(0\.092 -> 0\.078 s\/step under the CUDA graph/);
    expect(long.choices.find((x) => x.setting === "compile")?.source).toMatch(/gpu-speed-h200-2026-12-03-lora-bf16-compile\.jsonl/);
    // without the graph (checkpointing on) SDXL never compiles: the graph is its speed-up
    const ckpt = compileDiffusers(contract("sdxl", "character", { hardware: { kind: "local", gpu: "H200", vram_gb: 141 }, hyperparameters: { learning_rate: 1e-4, steps: 20000, gradient_checkpointing: true, optimizer: "adamw" } }), {}, PATHS);
    expect([ckpt.request.cuda_graphs, ckpt.request.compile]).toEqual([false, false]);
  });

  it("warns that Z-Image Turbo is distilled", () => {
    expect(compileDiffusers(contract("zimage-turbo", "character"), {}, PATHS).warnings.map((w) => w.code)).toEqual(["W_DISTILLED_BASE"]);
  });

  it("takes a resolved base path over the contract's and the knowledge default", () => {
    expect(compileDiffusers(contract("sdxl", "style"), {}, PATHS).request.base).toBe("stabilityai/stable-diffusion-xl-base-1.0");
    expect(compileDiffusers(contract("sdxl", "style"), {}, { ...PATHS, basePath: "/models/sdxl.safetensors" }).request.base).toBe("/models/sdxl.safetensors");
  });
});

describe("regularisation images (dataset.reg_path)", () => {
  it("go to the worker as reg_dataset (captions trained as written, never given the trigger)", () => {
    expect(compileDiffusers(contract("sdxl", "character"), {}, { ...PATHS, regDir: "/project/reg" }).request.reg_dataset).toBe("/project/reg");
    expect(compileDiffusers(contract("sdxl", "character"), {}, PATHS).request).not.toHaveProperty("reg_dataset");
  });
});
