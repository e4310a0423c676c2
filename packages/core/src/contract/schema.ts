import { z } from "zod";
import { BASE_MODEL_IDS } from "../knowledge/base-models.js";
import { TARGET_PRESETS } from "../knowledge/lora-targets.js";
import { LOSS_SPIKE_RULE } from "../knowledge/loss-spike.js";
import { REGULARISER_DEFAULTS as RD, TIMESTEP_SAMPLINGS } from "../knowledge/regularisers.js";

/**
 * The training contract (`lora.yaml`). This schema is the single source of truth: the TypeScript
 * types, the JSON Schema editors complete from (schema/lora-contract.schema.json), the CLI help
 * and the web form all come from it. Field names are snake_case, as in the trainers' own configs.
 * Objects are strict: a misspelled key is an error with its line, not a silently ignored value
 * (the failure mode of kohya's args-TOML, trainers.md §2.13 L-11).
 */

import { LR_SCHEDULERS, NETWORK_TYPES, OOM_FALLBACKS, OUTPUT_FORMATS, OPTIMIZERS, PRECISIONS, QUANTIZATIONS, SAMPLERS, TARGETS, TRAINER_IDS } from "./ids.js";

export * from "./ids.js";

const positiveInt = () => z.number().int().positive();

/**
 * Length limits on free text (characters). Ours: a contract is a small hand-edited file; the limits
 * are far above any real value and stop a pasted blob from reaching file names, logs and prompts.
 * Paths follow Linux PATH_MAX (4096); names become file names (ext4 NAME_MAX 255, minus suffixes).
 */
export const TEXT_LIMITS = { name: 128, path: 4096, short: 128, prompt: 2000, trigger: 64 } as const;
const text = (max: number) => z.string().max(max);

export const BaseSchema = z
  .strictObject({
    model: z.enum(BASE_MODEL_IDS).meta({ description: "Knowledge-base id of the base model." }),
    path: text(TEXT_LIMITS.path)
      .min(1)
      .optional()
      .meta({ description: "The weights: a local folder/file written ./x, ../x, /x or ~/x (relative ones from this file's folder), else a Hugging Face id (org/name; models/x is an id too: write ./models/x). Defaults to the model's official repo." }),
    // No default: a written value (none included) is a pin the plan keeps; left out, the plan decides (contract/base-quantize.ts).
    quantize: z
      .enum(QUANTIZATIONS)
      .optional()
      .meta({
        description:
          "Precision the frozen base weights are held in during training (fp8/int8 halve them, nf4 quarters them; none: bf16). Left out, the plan decides: a bf16 base, or for the built-in trainer an fp8 one when only that fits the VRAM ceiling. Written (none included), the plan keeps it and check reports a VRAM ceiling it does not fit.",
      }),
  })
  .meta({ description: "The model the LoRA is trained on." });

export const TrainerSchema = z
  .strictObject({
    name: z.enum(TRAINER_IDS).meta({ description: "Which trainer runs the job: the built-in diffusers trainer, kohya sd-scripts, ai-toolkit or fal.ai." }),
    version: text(TEXT_LIMITS.short)
      .min(1)
      .optional()
      .meta({ description: "Pinned trainer version (git tag like v0.10.1, or 0.12.26). Checked against the base model's minimum." }),
    endpoint: text(TEXT_LIMITS.short)
      .min(1)
      .optional()
      .meta({ description: "fal.ai endpoint id (fal only), e.g. fal-ai/flux-2-trainer. Defaults from the knowledge base." }),
  })
  .meta({ description: "The trainer and its pinned version." });

export const HardwareSchema = z
  .strictObject({
    kind: z.enum(["local", "fal"]).default("local").meta({ description: "A local GPU or fal.ai's hosted trainers." }),
    gpu: text(TEXT_LIMITS.short).min(1).optional().meta({ description: "GPU model, e.g. RTX 4090, A100 80GB, H100 (used for time estimates)." }),
    vram_gb: z.number().positive().optional().meta({ description: "VRAM of one GPU in GB." }),
    gpus: positiveInt().default(1).meta({ description: "Number of GPUs on the host (data parallel)." }),
    nodes: positiveInt()
      .default(1)
      .meta({ description: "Hosts training together, each with `gpus` GPUs (data parallel over gpus x nodes, through torchrun). More than 1 needs rendezvous and node_rank." }),
    rendezvous: z
      .string()
      .regex(/^[^\s:]+:\d{1,5}$/, "host:port")
      .optional()
      .meta({ description: "host:port of node 0 (node_rank 0), reachable from every node: torchrun's static rendezvous endpoint." }),
    node_rank: z
      .int()
      .min(0)
      .default(0)
      .meta({ description: "This host's place among the nodes (0..nodes-1); node 0 holds the rendezvous, reports and saves the LoRA." }),
    price_per_hour: z.number().nonnegative().optional().meta({ description: "What the GPU costs per hour in USD (rented), for the cost estimate." }),
    block_swap: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .meta({
        description:
          "Transformer blocks kept in CPU RAM and swapped onto the GPU as each is needed: less VRAM, slower steps. Compiled to Kohya's --blocks_to_swap (FLUX.1, SD3.5) or ai-toolkit's layer_offloading; the built-in trainer and fal take none.",
      }),
  })
  .superRefine((h, ctx) => {
    if (h.nodes > 1 && h.rendezvous === undefined) ctx.addIssue({ code: "custom", path: ["rendezvous"], message: `${h.nodes} nodes need node 0's host:port` });
    if (h.node_rank >= h.nodes) ctx.addIssue({ code: "custom", path: ["node_rank"], message: `must be below nodes (${h.nodes})` });
  })
  .meta({ description: "Where training runs." });

/** Aspect-ratio buckets (dataset.aspect: buckets); defaults are Kohya's (knowledge/buckets.ts), the set is decided in core (plan/buckets.ts). */
export const BucketsSchema = z
  .strictObject({
    min_side: positiveInt().optional().meta({ description: "Shortest bucket side in px (Kohya's --min_bucket_reso; default 256)." }),
    max_side: positiveInt()
      .optional()
      .meta({ description: "Longest bucket side in px (Kohya's --max_bucket_reso; default 1024, or the training resolution when larger)." }),
    step: positiveInt()
      .multipleOf(32)
      .optional()
      .meta({ description: "Bucket sides are multiples of this, in px (Kohya's --bucket_reso_steps and the built-in trainer's; default 64; sd-scripts needs a multiple of 32 for SDXL/FLUX; ai-toolkit uses its model's own divisibility instead)." }),
    resolutions: z
      .array(positiveInt())
      .min(1)
      .max(8)
      .optional()
      .meta({
        description:
          "Multi-resolution training (ai-toolkit's resolution: [512, 768, 1024]): every image is trained once per resolution, each with its own bucket set. Each at most dataset.resolution, which is always trained (it sizes the VRAM plan and the other trainers' single resolution).",
      }),
  })
  .meta({ description: "Aspect-ratio buckets: each image is resized to cover the bucket nearest its aspect and center-cropped to it; batches come from one bucket." });

export const DatasetSchema = z
  .strictObject({
    path: text(TEXT_LIMITS.path).min(1).meta({ description: "Folder of images (and caption sidecars), relative to this file." }),
    expected_images: positiveInt().optional().meta({ description: "How many images you mean to train on; check compares it with the folder." }),
    resolution: positiveInt().optional().meta({ description: "Training resolution in pixels (square side). Defaults to the base model's native resolution." }),
    aspect: z
      .enum(["square", "buckets"])
      .default("square")
      .meta({ description: "square: every image cropped to one square; buckets: aspect-ratio bucketing." }),
    crop: z.enum(["center", "attention"]).default("center").meta({ description: "How the square crop is placed." }),
    buckets: BucketsSchema.optional(),
    reg_path: text(TEXT_LIMITS.path)
      .min(1)
      .optional()
      .meta({
        description:
          "Regularisation (prior-preservation) images, relative to this file: other subjects of the class with their own captions, trained beside the dataset and never given the trigger, so only the trigger means the concept (Kohya's reg images, ai-toolkit's is_reg; fal trainers take none).",
      }),
  })
  .superRefine((d, ctx) => {
    if (d.buckets && d.aspect !== "buckets") ctx.addIssue({ code: "custom", path: ["buckets"], message: "dataset.buckets needs dataset.aspect: buckets" });
  })
  .meta({ description: "The training images." });

export const CaptionsSchema = z
  .strictObject({
    style: z
      .enum(["natural", "tags"])
      .default("natural")
      .meta({ description: "natural: sentences (needed by T5/LLM-encoded models); tags: comma-separated tags (SDXL only)." }),
    source: z.enum(["manual", "vlm"]).default("manual").meta({ description: "Written by you, or generated by a vision-language model (loraspec caption)." }),
    extension: z
      .string()
      .regex(/^\.[A-Za-z0-9]+$/)
      .default(".txt")
      .meta({ description: "Caption sidecar extension, with the dot (image.png -> image.txt)." }),
  })
  .meta({ description: "How the images are captioned." });

export const TriggerSchema = z
  .strictObject({
    word: text(TEXT_LIMITS.trigger)
      .min(1)
      .regex(/^\S+$/, "a trigger is one token without spaces")
      // Kohya's sample prompt file reads " --" as the start of an option (train_util.py line_to_prompt_dict), so the
      // prompts are written with "--" made "-": a trigger holding it would be sampled as another word than it trains.
      .regex(/^(?!.*--)/, "a trigger without '--' (Kohya's sample prompts read ' --' as an option)")
      .meta({ description: "The trigger token: rare, not an English word (e.g. txcl, ohwx)." }),
    placement: z.enum(["start", "anywhere"]).default("start").meta({ description: "Where the trigger sits in each caption." }),
  })
  .meta({ description: "The word that switches the LoRA on." });

export const HyperparametersSchema = z
  .strictObject({
    learning_rate: z.number().positive().optional().meta({ description: "Learning rate. Defaults from the knowledge base for the base model and target." }),
    steps: positiveInt().optional().meta({ description: "Optimizer steps. Give steps or passes_per_image." }),
    passes_per_image: positiveInt().optional().meta({ description: "How many times each image is seen (steps = passes x images / batch)." }),
    batch_size: positiveInt().default(1).meta({ description: "Images per step per GPU." }),
    gradient_accumulation: positiveInt().default(1).meta({ description: "Micro-batches per optimizer step." }),
    rank: positiveInt().default(16).meta({ description: "LoRA rank (network_dim)." }),
    alpha: z.number().positive().optional().meta({ description: "LoRA alpha. Defaults to the rank (scale 1)." }),
    optimizer: z.enum(OPTIMIZERS).default("adamw8bit").meta({ description: "Optimizer." }),
    precision: z.enum(PRECISIONS).default("bf16").meta({ description: "Mixed-precision dtype for training." }),
    gradient_checkpointing: z
      .boolean()
      .optional()
      .meta({
        description:
          "Recompute activations in the backward pass: less VRAM, 30-100% slower. Left out: on for kohya, ai-toolkit and fal; for the built-in trainer the plan turns it off when the peak without it fits the VRAM ceiling.",
      }),
    cache_latents: z.boolean().default(true).meta({ description: "Encode images once; the VAE leaves the GPU." }),
    cache_text_encoder_outputs: z
      .boolean()
      .default(true)
      .meta({ description: "Encode captions once; text encoders leave the GPU (no text-encoder LoRA, no caption shuffling)." }),
    save_every: positiveInt().optional().meta({ description: "Save a checkpoint every N steps (so a crash or overfit run keeps earlier LoRAs)." }),
    seed: z.number().int().nonnegative().default(42).meta({ description: "Random seed." }),
    lr_scheduler: z.enum(LR_SCHEDULERS).default("constant").meta({ description: "Learning-rate schedule." }),
    warmup_steps: z.number().int().nonnegative().default(0).meta({ description: "Warm-up steps." }),
    // Regularisers and schedules (knowledge/regularisers.ts holds each default's source).
    caption_dropout: z.number().min(0).lt(1).default(RD.caption_dropout.default).meta({
      description: "Share of samples trained on the empty caption (Kohya caption_dropout_rate): the LoRA also learns the concept unprompted. 0: off.",
    }),
    shuffle_tags: z.boolean().default(RD.shuffle_tags.default).meta({
      description: "Shuffle a tag caption's tags each step, the trigger's tag kept first (Kohya --shuffle_caption --keep_tokens 1). Needs cache_text_encoder_outputs: false.",
    }),
    noise_offset: z.number().min(0).max(1).default(RD.noise_offset.default).meta({
      description: "SDXL: add this x N(0,1) per image and channel to the noise (Kohya --noise_offset): darker darks and brighter brights. 0: off.",
    }),
    min_snr_gamma: z.number().positive().optional().meta({
      description: "SDXL: Min-SNR loss weighting min(SNR, gamma)/SNR (Kohya --min_snr_gamma, diffusers --snr_gamma; 5 is the paper's value). Left out: off.",
    }),
    timestep_sampling: z.enum(TIMESTEP_SAMPLINGS).optional().meta({
      description: "Flow models (FLUX, Qwen-Image, Z-Image): how noise levels are drawn: uniform, sigmoid, logit_normal, or shift (sigmoid shifted by resolution, as FLUX samples). Left out: each trainer's own default.",
    }),
    ema: z.number().gt(0).lt(1).optional().meta({
      description: "EMA decay of the LoRA weights (ai-toolkit ema_config; e.g. 0.99): the saved LoRA is the average. Left out: off.",
    }),
  })
  .meta({ description: "Training hyperparameters." });

export const LimitsSchema = z
  .strictObject({
    vram_ceiling_gb: z.number().positive().optional().meta({ description: "The estimated peak VRAM must stay below this (GB)." }),
    max_walltime_hours: z.number().positive().optional().meta({ description: "Stop (and fail check) beyond this many hours." }),
    max_cost_usd: z.number().nonnegative().optional().meta({ description: "The estimated cost must stay below this (USD)." }),
  })
  .meta({ description: "Hard limits the plan is checked against." });

export const FailureSchema = z
  .strictObject({
    on_divergence: z
      .enum(["stop", "rollback", "continue"])
      .optional()
      .meta({ description: "When the loss turns NaN or spikes: stop, roll back to the last checkpoint, or carry on. Left out: stop (and check warns: say it)." }),
    loss_spike_factor: z
      .number()
      .gt(1)
      .default(LOSS_SPIKE_RULE.factor)
      .meta({
        description: `A loss above this factor x its running average counts as divergence (the built-in trainer: the mean of the last ${LOSS_SPIKE_RULE.recentSteps} steps against the mean of up to ${LOSS_SPIKE_RULE.baselineSteps} before, from step ${LOSS_SPIKE_RULE.firstStep}).`,
      }),
    on_oom: z
      .enum(["fail", "fallback"])
      .optional()
      .meta({ description: "Out of memory at load: fail, or retry with the fallbacks in order. Left out: fail (and check warns: say it)." }),
    oom_fallbacks: z
      .array(z.enum(OOM_FALLBACKS))
      .default(["gradient_checkpointing", "optimizer_8bit", "smaller_batch"])
      .meta({ description: "What to try, in order, when on_oom is fallback." }),
  })
  .meta({ description: "What happens when training goes wrong." });

/**
 * The adapter itself: its kind and which modules of the denoiser it covers (rank and alpha stay in
 * hyperparameters, where every trainer's docs put them). Compiled to every trainer.
 */
export const NetworkSchema = z
  .strictObject({
    type: z
      .enum(NETWORK_TYPES)
      .default("lora")
      .meta({
        description:
          "The adapter kind: lora (low-rank A/B), dora (LoRA with a learned per-output magnitude, weight-decomposed), lokr (Kronecker product of two factors), loha (Hadamard product of two low-rank pairs). LoRA loads everywhere; the others need a LyCORIS-aware loader (ComfyUI, Forge, A1111 1.5+).",
      }),
    factor: z
      .int()
      .min(-1)
      .refine((n) => n !== 0, "-1 (the largest factor) or a factor of 1 or more")
      .optional()
      .meta({
        description:
          "LoKr only: the Kronecker factor, how each weight's dimensions are split between the two factors (-1, the default: the largest factor, near the square root). LyCORIS `factor`, ai-toolkit `lokr_factor`, peft `decompose_factor`.",
      }),
    targets: z
      .enum(TARGET_PRESETS)
      .optional()
      .meta({
        description:
          "Which modules of the transformer blocks the LoRA trains: attention (the attention projections), attention-mlp (+ the MLPs), all-linear (every linear and 1x1 conv of the blocks, Kohya's default set). Left out: each trainer's own default (built-in: attention, as diffusers' dreambooth scripts; Kohya: all-linear).",
      }),
    modules: z
      .array(z.string().min(1).max(TEXT_LIMITS.short))
      .min(1)
      .max(64)
      .optional()
      .meta({
        description:
          "Experts: an explicit list of diffusers module-name patterns instead of a preset (e.g. [to_q, to_v]; on SDXL also attn1.* / attn2.* to split self- from cross-attention, e.g. Custom Diffusion's [attn2.to_k, attn2.to_v]); each must be one the base's architecture has (check lists them). The built-in trainer and ai-toolkit take it.",
      }),
  })
  .meta({ description: "The adapter: its kind and the modules it trains." });

/** What the run writes besides the LoRA. */
export const OutputSchema = z
  .strictObject({
    format: z
      .enum(OUTPUT_FORMATS)
      .optional()
      .meta({
        description:
          "Key format of the LoRA the run leaves (converted after training, every key accounted for): kohya (lora_unet_*/lora_te*_ with .alpha: what A1111, Forge, ComfyUI and diffusers all load), diffusers (peft lora_A/lora_B), comfy (diffusion_model.*). Left out: as the trainer writes it (diffusers for the built-in trainer, kohya for Kohya). DoRA/LoKr/LoHa modules convert where they are whole in both namings (SDXL, Qwen-Image, Z-Image); on FLUX's fused projections they cannot (lint output-format-unsupported).",
      }),
  })
  .meta({ description: "The LoRA file the run writes." });

/** Images rendered while training, to watch the LoRA evolve. */
export const SamplesSchema = z
  .strictObject({
    every: z
      .int()
      .nonnegative()
      .default(0)
      .meta({
        description:
          "Render the sample prompts every N optimizer steps and at the end, to watch the LoRA evolve (0: off). Kohya's --sample_every_n_steps, ai-toolkit's sample_every; fal trainers take none.",
      }),
    prompts: z
      .array(
        text(TEXT_LIMITS.prompt)
          .min(1)
          // Kohya's prompt file is one prompt a line, options after " --" (train_util.py line_to_prompt_dict).
          .regex(/^(?!.*--)[^\r\n]+$/, "one line, without '--' (Kohya reads it as an option)"),
      )
      .min(1)
      .max(8)
      .optional()
      .meta({ description: "Sample prompts ({trigger} is replaced; the trigger goes in front when absent). Default: the validation rubric's first trigger prompt and first novel scene." }),
    seeds: z
      .array(z.int().nonnegative())
      .min(1)
      .max(4)
      .optional()
      .meta({ description: "Fixed seeds: every prompt is rendered with each, at every sampling step, so the images differ only by training. Default: [42] (ai-toolkit's examples)." }),
    steps: z
      .int()
      .min(1)
      .max(1000)
      .optional()
      .meta({ description: "Inference steps per sample. Default per base model (knowledge/sampling.ts, from ai-toolkit's examples)." }),
    guidance: z
      .number()
      .nonnegative()
      .max(30)
      .optional()
      .meta({ description: "Guidance scale (CFG, or FLUX's embedded guidance). Default per base model (knowledge/sampling.ts)." }),
    first: z
      .boolean()
      .optional()
      .meta({
        description:
          "Also render the samples before the first step (step 0: the base model, the LoRA still zero), so the strip starts from what the base draws. Kohya's --sample_at_first, ai-toolkit's skip_first_sample: false. Default: false.",
      }),
  })
  .meta({ description: "Sample images during training." });

export const StackEntrySchema = z.strictObject({
  lora: text(TEXT_LIMITS.path).min(1).meta({ description: "Another LoRA file (path or URL) to stack with this one." }),
  weight: z.number().min(0).max(2).meta({ description: "Its weight in the stack." }),
});

export const ValidationSchema = z
  .strictObject({
    seeds: z.array(z.number().int().nonnegative()).min(1, "at least one seed: with none no image is rendered, so no check runs").default([1, 2, 3]).meta({ description: "Seeds every prompt is sampled with." }),
    trigger_prompts: z
      .array(text(TEXT_LIMITS.prompt).min(1))
      // [] tested the trigger with a prompt the contract never named (validate fell back to "a photo of {trigger}").
      .min(1, "at least one prompt: with none the trigger on/off check has nothing to test (leave it out for the default)")
      .default(["a photo of {trigger}"])
      .meta({ description: "Prompts with the trigger ({trigger} is replaced); each is also sampled with the trigger removed (trigger on/off)." }),
    pose_variations: z.number().int().nonnegative().default(10).meta({ description: "How many pose/angle variations to sample." }),
    variation_prompts: z
      .array(text(TEXT_LIMITS.prompt).min(1))
      .optional()
      .meta({
        description:
          "Your own pose/angle/framing prompts ({trigger} is replaced; the trigger goes in front when absent), cycled to pose_variations, instead of loraspec's built-in list for the target.",
      }),
    novel_scenes: z.array(text(TEXT_LIMITS.prompt).min(1)).default([]).meta({ description: "Prompts placing the subject somewhere not in the dataset." }),
    stack: z.array(StackEntrySchema).default([]).meta({ description: "Other LoRAs to test stacking with (combined weight <= 1.0)." }),
    // 0 stacked the other LoRAs without this one: the stack check tested nothing of it.
    self_weight: z.number().gt(0, "above 0: at 0 the stack check renders the other LoRAs without this one").max(2).default(1).meta({ description: "This LoRA's weight when stacked." }),
    weight_sweep: z
      .array(z.number().min(0).max(2))
      // [] (or only 0) made validate pass without ever loading the LoRA: an empty verdict table, exit 0.
      .min(1, "at least one weight: with none validate never loads the LoRA and every check passes vacuously")
      .refine((weights) => weights.length === 0 || weights.some((w) => w > 0), "at least one weight above 0: at 0 the LoRA is not applied, so no check tests it")
      .default([0.6, 0.8, 1.0])
      .meta({ description: "LoRA weights to sample at (at least one above 0: the checks run at each)." }),
    sampler: z.enum(SAMPLERS).default("worker").meta({ description: "Who renders validation images: the local worker, fal.ai, or a ComfyUI server." }),
  })
  .meta({ description: "The validation rubric the trained LoRA is checked against." });

/**
 * Judgement rules a contract may knowingly accept, with a reason (a toy model's LR, a deliberate
 * small dataset). Rules that mean the run cannot start or breaks (missing base, save_every past the
 * end, unsupported trainer) are not acceptable: a clean check must still mean the run starts.
 */
export const ACCEPTABLE_RULES = [
  "lr-out-of-range",
  "lr-sdxl-on-flux",
  "recipe-target-mismatch",
  "dataset-below-minimum",
  "dataset-size-range",
  "steps-out-of-range",
  "passes-per-image-out-of-range",
  "trigger-english-word",
  "trigger-not-at-start",
  "captions-tags-on-t5",
  "stack-over-limit",
  "network-targets-approximate",
] as const;

export const LintSchema = z
  .strictObject({
    accept: z
      .array(
        z.strictObject({
          rule: z.enum(ACCEPTABLE_RULES).meta({ description: "The rule id check reports." }),
          why: text(TEXT_LIMITS.prompt).min(10).meta({ description: "Why this contract departs from the guide (shown with the finding)." }),
        }),
      )
      .default([])
      .meta({ description: "Judgement rules this contract departs from on purpose: each finding is shown as a note with the reason instead of an error." }),
  })
  .meta({ description: "What check should accept, with reasons." });

export const ContractSchema = z
  .strictObject({
    version: z.literal(1).meta({ description: "Contract format version." }),
    name: text(TEXT_LIMITS.name)
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "letters, digits, dot, dash and underscore only")
      .meta({ description: "Name of the LoRA (output file names)." }),
    base: BaseSchema,
    trainer: TrainerSchema,
    hardware: HardwareSchema.prefault({}),
    target: z.enum(TARGETS).meta({ description: "What the LoRA learns: a character (person, creature), a style, or a product." }),
    dataset: DatasetSchema,
    captions: CaptionsSchema.prefault({}),
    trigger: TriggerSchema,
    hyperparameters: HyperparametersSchema.prefault({}),
    network: NetworkSchema.prefault({}),
    samples: SamplesSchema.prefault({}),
    output: OutputSchema.prefault({}),
    limits: LimitsSchema.prefault({}),
    failure: FailureSchema.prefault({}),
    validation: ValidationSchema.prefault({}),
    lint: LintSchema.prefault({}),
  })
  .meta({ title: "loraspec training contract", description: "lora.yaml: one LoRA training run, checked before any GPU time is spent." });

/** A parsed contract, defaults filled in. */
export type Contract = z.output<typeof ContractSchema>;
/** What a user may write (defaults optional). */
export type ContractInput = z.input<typeof ContractSchema>;
