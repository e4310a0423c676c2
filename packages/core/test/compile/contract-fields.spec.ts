import { describe, expect, it } from "vitest";
import { ContractSchema, type Contract, type ContractInput } from "@loraspec/core/contract/schema.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileFal } from "@loraspec/core/compile/fal/compile-fal.js";
import { compileDiffusers } from "@loraspec/core/compile/diffusers.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { PATHS } from "./contract-fixture.js";
import { FAL_DEFAULT_ENDPOINT, FAL_TRAINER_ENDPOINTS } from "@loraspec/core/compile/fal/fal-endpoints.js";
import type { BaseModelId } from "@loraspec/core/knowledge/base-models.js";

/**
 * Every contract field x every trainer: either the field reaches what the trainer runs (the compiled
 * files, command, input or request change when the field changes) or the lint names the field (a
 * finding on one of the two values, or the compiler refuses it with the field). A field that changes
 * nothing and is named by nothing is silently dropped, and this test fails.
 */

type Trainer = "diffusers" | "kohya" | "ai-toolkit" | "fal";
/** Each trainer; fal once with the base's default endpoint and once per endpoint (their inputs differ). */
const CASES: ReadonlyArray<{ t: Trainer; endpoint?: string; base?: BaseModelId }> = [
  { t: "diffusers" },
  { t: "kohya" },
  { t: "kohya", base: "flux1-dev" },
  { t: "ai-toolkit" },
  { t: "ai-toolkit", base: "qwen-image" },
  { t: "fal" },
  ...FAL_TRAINER_ENDPOINTS.map((e) => ({ t: "fal" as const, endpoint: e.endpoint, base: e.base })),
];

/** Fields loraspec itself consumes (plan, lint, prep, supervisor, validation): not trainer inputs. */
const LORASPEC_SIDE: Readonly<Record<string, string>> = {
  version: "contract format version (parse-contract)",
  "trainer.name": "selects the compiler (build-train-job)",
  "hardware.kind": "lint hardware-trainer-mismatch",
  "hardware.gpu": "plan: walltime per GPU",
  "hardware.vram_gb": "plan: VRAM check (lint vram-below-profile); kohya FLUX block swap",
  "hardware.price_per_hour": "plan: cost",
  "hardware.rendezvous": "with hardware.nodes (its variant sets both): the worker's torchrun --rdzv-endpoint, Kohya's --main_process_ip/port",
  "hardware.node_rank": "with hardware.nodes: which host this is (--node-rank / --machine_rank); 0 compiles as the default",
  target: "plan and lint: recipes per target (fal endpoints also get it)",
  "dataset.path": "engine: the run copies it into the trainer's dataset folder",
  "dataset.expected_images": "lint dataset-count-mismatch",
  "dataset.crop": "loraspec prep (engine/dataset/process-image.ts) crops before training",
  "captions.style": "lint captions-tags-on-t5; caption command",
  "captions.source": "caption command",
  "trigger.placement": "lint trigger-not-at-start",
  "hyperparameters.passes_per_image": "plan: resolved into steps",
  limits: "plan, lint and the supervisor (walltime)",
  failure: "the supervisor (divergence, OOM fallbacks)",
  validation: "loraspec validate (ai-toolkit also samples trigger_prompts)",
  "output.format": "engine run/output-format.ts converts the trainer's LoRA after the run (every trainer; lint output-format-unsupported for DoRA/LoKr/LoHa)",
  lint: "lint.accept turns an accepted judgement finding into a note (lint-contract accepted())",
};

/** The rules that say "this trainer does not take what the contract says" (other rules judge values). */
const REFUSING_RULES = new Set(["block-swap-unsupported", "schedule-unsupported", "trainer-ignores-field", "fal-endpoint-target", "reg-images-unsupported", "hardware-trainer-mismatch", "trainer-unsupported-base", "network-targets-unsupported", "network-modules-unknown", "regulariser-unsupported", "shuffle-tags-cached-text", "network-type-unsupported", "network-factor-unused"]);

/** Fields loraspec consumes itself for one trainer only. */
const LORASPEC_SIDE_FOR: Readonly<Partial<Record<Trainer, Readonly<Record<string, string>>>>> = {
  "ai-toolkit": {
    // Left as found: a memory lever, not a training setting; the profile caches where ai-toolkit can.
    "hyperparameters.cache_text_encoder_outputs": "ai-toolkit-profiles.ts cacheTextEmbeddings decides per arch (off for SDXL: encoders stay loaded)",
  },
  fal: {
    name: "the fal runner names the downloaded LoRA after it (engine/fal)",
    "captions.extension": "packZip reads these sidecars and writes .txt into the ZIP (engine/dataset/pack-zip.ts)",
  },
};

/** Another valid value for each trainer-input field (a partial contract merged over the base). */
const VARIANTS: Readonly<Record<string, (t: Trainer, endpoint?: string) => ContractInput | Record<string, unknown>>> = {
  name: () => ({ name: "other-name" }),
  "base.model": (t) => (t === "fal" ? { base: { model: "flux2-dev" } } : t === "kohya" ? { base: { model: "flux1-schnell", path: "/models/flux" } } : { base: { model: "flux1-dev" } }),
  "base.path": () => ({ base: { path: "/models/own-weights" } }),
  "base.quantize": () => ({ base: { quantize: "fp8" } }),
  "trainer.version": (t) => ({ trainer: { version: t === "kohya" ? "v0.9.1" : "0.1.0" } }),
  // Another endpoint: of the same base where there is one (else the compiler refuses the pair).
  "trainer.endpoint": (_t, named) => {
    const current = named ?? FAL_DEFAULT_ENDPOINT["flux1-dev"];
    const base = FAL_TRAINER_ENDPOINTS.find((e) => e.endpoint === current)?.base ?? "flux1-dev";
    const other = FAL_TRAINER_ENDPOINTS.find((e) => e.endpoint !== current && e.base === base) ?? FAL_TRAINER_ENDPOINTS.find((e) => e.endpoint !== current)!;
    return { trainer: { endpoint: other.endpoint } };
  },
  "hardware.gpus": () => ({ hardware: { gpus: 2 } }),
  "hardware.block_swap": () => ({ hardware: { block_swap: 4 } }),
  "hardware.nodes": () => ({ hardware: { nodes: 2, rendezvous: "n0:29500" } }),
  "dataset.resolution": () => ({ dataset: { resolution: 768 } }),
  "dataset.aspect": () => ({ dataset: { aspect: "buckets" } }),
  "dataset.reg_path": () => ({ dataset: { reg_path: "./reg" } }),
  // dataset.buckets needs aspect: buckets (the schema refuses it under square).
  "dataset.buckets.min_side": () => ({ dataset: { aspect: "buckets", buckets: { min_side: 320 } } }),
  "dataset.buckets.max_side": () => ({ dataset: { aspect: "buckets", buckets: { max_side: 1536 } } }),
  "dataset.buckets.step": () => ({ dataset: { aspect: "buckets", buckets: { step: 32 } } }),
  "dataset.buckets.resolutions": () => ({ dataset: { aspect: "buckets", buckets: { resolutions: [512] } } }),
  "captions.extension": () => ({ captions: { extension: ".caption" } }),
  "trigger.word": () => ({ trigger: { word: "ohwx" } }),
  "hyperparameters.learning_rate": () => ({ hyperparameters: { learning_rate: 8e-5 } }),
  "hyperparameters.steps": () => ({ hyperparameters: { steps: 1000 } }),
  "hyperparameters.batch_size": () => ({ hyperparameters: { batch_size: 2 } }),
  "hyperparameters.gradient_accumulation": () => ({ hyperparameters: { gradient_accumulation: 2 } }),
  "hyperparameters.rank": () => ({ hyperparameters: { rank: 32 } }),
  "hyperparameters.alpha": () => ({ hyperparameters: { alpha: 8 } }),
  "hyperparameters.optimizer": () => ({ hyperparameters: { optimizer: "adamw" } }),
  "hyperparameters.precision": () => ({ hyperparameters: { precision: "fp16" } }),
  "hyperparameters.gradient_checkpointing": () => ({ hyperparameters: { gradient_checkpointing: false } }),
  "hyperparameters.cache_latents": () => ({ hyperparameters: { cache_latents: false } }),
  "hyperparameters.cache_text_encoder_outputs": () => ({ hyperparameters: { cache_text_encoder_outputs: false } }),
  "hyperparameters.save_every": () => ({ hyperparameters: { save_every: 100 } }),
  "hyperparameters.seed": () => ({ hyperparameters: { seed: 7 } }),
  "hyperparameters.lr_scheduler": () => ({ hyperparameters: { lr_scheduler: "cosine" } }),
  // Sampling on changes what every trainer gets; each other samples field is set with it (off, it reaches nothing).
  "samples.every": () => ({ samples: { every: 100 } }),
  "samples.prompts": () => ({ samples: { every: 100, prompts: ["{trigger} on a beach"] } }),
  "samples.seeds": () => ({ samples: { every: 100, seeds: [1, 2] } }),
  "samples.steps": () => ({ samples: { every: 100, steps: 8 } }),
  "samples.guidance": () => ({ samples: { every: 100, guidance: 2.5 } }),
  "samples.first": () => ({ samples: { every: 100, first: true } }),
  "hyperparameters.warmup_steps": () => ({ hyperparameters: { lr_scheduler: "constant_with_warmup", warmup_steps: 50 } }),
  // fal trains LoRA only (refused naming network.type); the factor with lora is network-factor-unused
  // (network.spec.ts checks it reaches every trainer with lokr).
  "network.type": () => ({ network: { type: "lokr" } }),
  "network.factor": () => ({ network: { factor: 4 } }),
  // attention-mlp: a preset no trainer trains by default (Kohya's default is all-linear).
  "network.targets": () => ({ network: { targets: "attention-mlp" } }),
  "network.modules": () => ({ network: { modules: ["to_q", "to_v"] } }),
  "hyperparameters.caption_dropout": () => ({ hyperparameters: { caption_dropout: 0.1 } }),
  // Shuffling needs the captions encoded each step (lint shuffle-tags-cached-text otherwise).
  "hyperparameters.shuffle_tags": () => ({ hyperparameters: { shuffle_tags: true, cache_text_encoder_outputs: false } }),
  "hyperparameters.noise_offset": () => ({ hyperparameters: { noise_offset: 0.05 } }),
  "hyperparameters.min_snr_gamma": () => ({ hyperparameters: { min_snr_gamma: 5 } }),
  "hyperparameters.timestep_sampling": () => ({ hyperparameters: { timestep_sampling: "shift" } }),
  "hyperparameters.ema": () => ({ hyperparameters: { ema: 0.99 } }),
};

function baseInput(t: Trainer, endpoint?: string, base?: BaseModelId): ContractInput {
  return {
    version: 1,
    name: "txcl-character",
    // sd-scripts loads FLUX.1 only from local single files.
    base: { model: base ?? (t === "fal" ? "flux1-dev" : "sdxl"), ...(t === "kohya" && base === "flux1-dev" ? { path: "/models/flux" } : {}) },
    trainer: { name: t, ...(endpoint ? { endpoint } : {}) },
    hardware: { kind: t === "fal" ? "fal" : "local", gpu: "RTX 4090", vram_gb: 24 },
    target: "character",
    dataset: { path: "./dataset", expected_images: 20 },
    captions: { style: "natural" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 1500, save_every: 250 },
  };
}

function merge(base: ContractInput, patch: Record<string, unknown>): Contract {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    const prev = (base as Record<string, unknown>)[k];
    out[k] = v && typeof v === "object" && !Array.isArray(v) && prev && typeof prev === "object" ? { ...prev, ...v } : v;
  }
  return ContractSchema.parse(out);
}

/** What the trainer gets, as one string; a coded refusal naming a field is returned as such. */
function compiled(t: Trainer, c: Contract): { text: string } | { refusedField: string | undefined } {
  try {
    const paths = { ...PATHS, regDir: c.dataset.reg_path ? "/project/reg" : undefined };
    const out =
      t === "kohya"
        ? compileKohya(c, {}, paths)
        : t === "ai-toolkit"
          ? compileAiToolkit(c, {}, paths)
          : t === "fal"
            ? compileFal(c, {}, { zipUrl: "https://x/zip" })
            : compileDiffusers(c, {}, { datasetDir: PATHS.datasetDir, outputDir: PATHS.outputDir, regDir: paths.regDir });
    return { text: JSON.stringify(out) };
  } catch (error) {
    if (isLoraspecError(error)) return { refusedField: error.field };
    throw error;
  }
}

/** The leaf paths of the contract schema (objects recursed; arrays and scalars are leaves). */
function leafPaths(): string[] {
  const out: string[] = [];
  const walk = (schema: unknown, prefix: string) => {
    let s = schema as { def?: { type?: string; innerType?: unknown; shape?: Record<string, unknown> }; shape?: Record<string, unknown> };
    while (s.def && (s.def.type === "default" || s.def.type === "optional" || s.def.type === "prefault") && s.def.innerType) s = s.def.innerType as typeof s;
    const shape = s.def?.type === "object" ? (s.def.shape ?? s.shape) : undefined;
    if (!shape || (prefix && LORASPEC_SIDE[prefix])) {
      out.push(prefix);
      return;
    }
    for (const [k, v] of Object.entries(shape)) walk(v, prefix ? `${prefix}.${k}` : k);
  };
  walk(ContractSchema, "");
  return out;
}

describe("every contract field reaches every trainer or is refused", () => {
  const leaves = leafPaths();

  it("classifies every field of the schema (a new field must be added here)", () => {
    expect(leaves.filter((p) => !LORASPEC_SIDE[p] && !VARIANTS[p])).toEqual([]);
    expect(leaves.length).toBeGreaterThan(30);
  });

  for (const { t, endpoint, base: model } of CASES) {
    for (const field of Object.keys(VARIANTS)) {
      if (LORASPEC_SIDE_FOR[t]?.[field]) continue;
      // A named endpoint fixes the base model: changing it is the endpoint's refusal (E_TRAINER_UNSUPPORTED on trainer.endpoint).
      if (endpoint && field === "base.model") continue;
      it(`${t}${endpoint ? ` ${endpoint}` : ""}${model && !endpoint ? ` ${model}` : ""}: ${field}`, () => {
        const base = merge(baseInput(t, endpoint, model), {});
        const variant = merge(baseInput(t, endpoint, model), VARIANTS[field]!(t, endpoint) as Record<string, unknown>);
        const a = compiled(t, base);
        const b = compiled(t, variant);
        if ("text" in a && "text" in b && a.text !== b.text) return;
        if ("refusedField" in b) {
          expect(b.refusedField, `${t} refused ${field} naming another field`).toBe(field);
          return;
        }
        const named = [...lintContract(base), ...lintContract(variant)].filter((f) => f.field === field && REFUSING_RULES.has(f.rule));
        expect(named.map((f) => f.rule), `${t} drops ${field} silently: the output is the same and no finding names it`).not.toEqual([]);
      });
    }
  }
});
