import { getBaseModel, type BaseModelId } from "../knowledge/base-models.js";
import { findGpu } from "../knowledge/gpus.js";
import { getDatasetSize, getLrRange, getSteps, CAPTION_RULES, STACKING } from "../knowledge/recipes.js";
import { COMPATIBILITY, getCompatibility, PINNED_TRAINER_VERSIONS, trainerRuns } from "../knowledge/trainers.js";
import { VRAM_MODEL } from "../knowledge/vram.js";
import { LoraspecError } from "../errors.js";
import { estimateVram } from "../plan/estimate-vram.js";
import { ContractSchema, QUANTIZATIONS, type ContractInput, type Target, type TrainerId } from "./schema.js";

export interface InitChoices {
  base: BaseModelId;
  target: Target;
  trigger: string;
  trainer?: TrainerId;
  /** Dataset folder, relative to the contract. */
  dataset?: string;
  /** Images found in the folder, if it exists (sizes the step count). */
  imageCount?: number;
  hardware?: "local" | "fal";
  gpu?: string;
  vramGb?: number;
  pricePerHour?: number;
  maxCostUsd?: number;
  name?: string;
}

/** Why a value was chosen, keyed by dotted field path; written as comments into lora.yaml. */
export interface Reason {
  why: string;
  source: string;
}

export interface Recommendation {
  contract: ContractInput;
  reasons: Record<string, Reason>;
}

/**
 * Chooses every contract value from the knowledge base for a base model and target, with the
 * reason and source for each. Pure.
 */
export function recommendContract(choices: InitChoices): Recommendation {
  const model = getBaseModel(choices.base);
  if (!model) throw new LoraspecError("E_UNKNOWN_BASE_MODEL", `unknown base model '${choices.base}'`, { field: "base" });
  const reasons: Record<string, Reason> = {};
  const hardware = choices.hardware ?? (choices.trainer === "fal" ? "fal" : "local");
  const trainer = choices.trainer ?? pickTrainer(choices.base, hardware);
  const compat = getCompatibility(trainer, choices.base);
  if (!compat || !trainerRuns(trainer, choices.base)) {
    const supported = COMPATIBILITY.filter((r) => r.base === choices.base && trainerRuns(r.trainer, r.base) && ["diffusers", "kohya", "ai-toolkit", "fal"].includes(r.trainer)).map((r) => r.trainer);
    throw new LoraspecError("E_TRAINER_UNSUPPORTED", `${trainer} does not train ${model.label}`, {
      field: "trainer",
      hint: supported.length ? `Pick one of: ${supported.join(", ")}.` : `No trainer loraspec drives trains ${model.label} today; pick another base model.`,
      details: { source: compat?.source },
    });
  }
  reasons["trainer.name"] = choices.trainer
    ? { why: `your choice; supports ${model.label}`, source: compat.source }
    : { why: `supports ${model.label}${hardware === "fal" ? " as a hosted fal.ai trainer" : " locally"}`, source: compat.source };
  const pinned = trainer === "kohya" || trainer === "ai-toolkit" ? PINNED_TRAINER_VERSIONS[trainer] : undefined;
  const version = pinned && compat.minVersion && (compareLoose(pinned.version, compat.minVersion) ?? 0) < 0 ? compat.minVersion : pinned?.version;
  if (version) reasons["trainer.version"] = { why: "the version loraspec's compiler targets (pinned: flags change between versions)", source: pinned!.source };

  const lr = getLrRange(model.family, choices.target);
  const size = getDatasetSize(choices.target, model.family);
  const steps = getSteps(choices.target);
  const images = choices.imageCount && choices.imageCount > 0 ? choices.imageCount : size.recommended;
  const stepCount = clamp(Math.round((steps.passesPerImage * images) / 50) * 50, steps.steps.min, steps.steps.max);
  const saveEvery = Math.max(50, Math.round(stepCount / 8 / 50) * 50);
  const gpu = findGpu(choices.gpu);
  const vramGb = choices.vramGb ?? gpu?.vramGb;

  const contract: ContractInput = {
    version: 1,
    name: choices.name ?? `${choices.trigger}-${choices.target}`,
    base: { model: choices.base, path: model.hfRepo, quantize: "none" },
    trainer: { name: trainer, ...(version ? { version } : {}), ...(compat.endpoint ? { endpoint: compat.endpoint } : {}) },
    hardware:
      hardware === "fal"
        ? { kind: "fal" }
        : {
            kind: "local",
            ...(choices.gpu ? { gpu: choices.gpu } : {}),
            ...(vramGb ? { vram_gb: vramGb } : {}),
            gpus: 1,
            ...(choices.pricePerHour !== undefined ? { price_per_hour: choices.pricePerHour } : {}),
          },
    target: choices.target,
    dataset: { path: choices.dataset ?? "./dataset", expected_images: images, resolution: model.nativeResolution, aspect: "square", crop: "center" },
    captions: { style: "natural", source: "manual", extension: ".txt" },
    trigger: { word: choices.trigger, placement: "start" },
    hyperparameters: {
      learning_rate: lr?.recommended ?? 1e-4,
      steps: stepCount,
      batch_size: 1,
      gradient_accumulation: 1,
      rank: 16,
      alpha: 16,
      optimizer: "adamw8bit",
      precision: "bf16",
      // The built-in trainer's plan chooses it from the VRAM ceiling (plan/train-settings.ts).
      ...(trainer === "diffusers" ? {} : { gradient_checkpointing: true }),
      cache_latents: true,
      cache_text_encoder_outputs: true,
      save_every: saveEvery,
      seed: 42,
      lr_scheduler: "constant",
      warmup_steps: 0,
    },
    limits: { ...(vramGb && hardware === "local" ? { vram_ceiling_gb: vramGb } : {}), ...(choices.maxCostUsd !== undefined ? { max_cost_usd: choices.maxCostUsd } : {}) },
    failure: { on_divergence: "stop", loss_spike_factor: 4, on_oom: "fallback", oom_fallbacks: ["gradient_checkpointing", "optimizer_8bit", "smaller_batch"] },
    validation: {
      seeds: [1, 2, 3],
      trigger_prompts: [subjectPrompt(choices.target)],
      pose_variations: choices.target === "style" ? 0 : 10,
      novel_scenes: [choices.target === "style" ? "a lighthouse on a cliff at dawn, in the style of {trigger}" : "{trigger} on the surface of the moon"],
      stack: [],
      self_weight: 1,
      weight_sweep: [0.6, 0.8, 1.0],
      sampler: hardware === "fal" ? "fal" : "worker",
    },
  };

  reasons["base.model"] = { why: `${model.label}: ${model.architecture}; text encoders ${model.textEncoders.map((t) => t.name).join(" + ")}; native ${model.nativeResolution} px`, source: model.source };
  reasons["dataset.resolution"] = { why: `${model.label}'s native resolution`, source: model.source };
  reasons["dataset.expected_images"] = {
    why: `${choices.imageCount ? `${images} images found in the folder` : `recommended count`}; a ${choices.target} LoRA wants ${size.images.min}-${size.images.max} (${size.advice})`,
    source: size.source,
  };
  if (lr) reasons["hyperparameters.learning_rate"] = { why: `range ${sci(lr.range.min)} to ${sci(lr.range.max)} for a ${choices.target} LoRA on ${model.label}`, source: lr.source };
  reasons["hyperparameters.steps"] = {
    why: `~${steps.passesPerImage} passes x ${images} images, kept within ${steps.steps.min}-${steps.steps.max} for a ${choices.target}`,
    source: steps.source,
  };
  reasons["hyperparameters.save_every"] = { why: "about 8 checkpoints, so an overcooked run still has an earlier LoRA", source: "ours" };
  reasons["hyperparameters.optimizer"] = { why: "8-bit AdamW states: ~10 B per LoRA parameter instead of 16", source: VRAM_MODEL.source };
  if (trainer !== "diffusers") {
    reasons["hyperparameters.gradient_checkpointing"] = { why: "trades 30-100% speed for the activation memory that dominates LoRA VRAM", source: VRAM_MODEL.source };
  }
  reasons["captions.style"] = {
    why: model.captionEncoder === "clip" ? "natural language works everywhere; tags are acceptable on SDXL" : `${model.label} reads captions with a ${model.captionEncoder === "t5" ? "T5" : "LLM"} encoder: write sentences, not tags`,
    source: CAPTION_RULES.naturalForT5.source,
  };
  reasons["trigger.placement"] = { why: "the trigger opens every caption", source: CAPTION_RULES.triggerAtStart.source };
  reasons["validation.self_weight"] = { why: `when stacking, keep at most ${STACKING.maxAdapters} LoRAs with combined weight <= ${STACKING.maxCombinedWeight}`, source: STACKING.source };

  // Quantise the base only as far as the VRAM needs.
  if (hardware === "local" && vramGb) {
    for (const q of QUANTIZATIONS) {
      (contract.base as { quantize: string }).quantize = q;
      const est = estimateVram(ContractSchema.parse(contract), model, model.nativeResolution);
      if (est.totalGb <= vramGb || q === "nf4") {
        reasons["base.quantize"] = {
          why:
            q === "none"
              ? `bf16 base fits: ~${est.totalGb} GB estimated peak for ${vramGb} GB`
              : `~${est.totalGb} GB estimated peak with ${q} base weights for ${vramGb} GB${est.totalGb > vramGb ? " (still over: use a bigger GPU or fal)" : ""}`,
          source: `${VRAM_MODEL.source}; ${model.vram.source}`,
        };
        break;
      }
    }
  }
  return { contract, reasons };
}

function pickTrainer(base: BaseModelId, hardware: "local" | "fal"): TrainerId {
  if (hardware === "fal") return "fal";
  for (const t of ["ai-toolkit", "kohya", "diffusers"] as const) if (trainerRuns(t, base)) return t;
  return "diffusers";
}

function subjectPrompt(target: Target): string {
  if (target === "style") return "a city street at night, in the style of {trigger}";
  if (target === "product") return "a photo of {trigger} on a marble table, studio lighting";
  return "a photo of {trigger} standing in a park";
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

function sci(x: number): string {
  return x.toExponential().replace(/\.?0+e/, "e");
}

function compareLoose(a: string, b: string): number | undefined {
  const pa = a.replace(/^v/, "").split(".").map(Number);
  const pb = b.replace(/^v/, "").split(".").map(Number);
  if ([...pa, ...pb].some(Number.isNaN)) return undefined;
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}
