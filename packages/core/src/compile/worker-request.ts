import { z } from "zod";
import { LR_SCHEDULERS } from "../contract/ids.js";
import { BUILTIN_TRAINER, WORKER_ARCHES } from "../knowledge/builtin-trainer.js";
import { TIMESTEP_SAMPLINGS } from "../knowledge/regularisers.js";

/**
 * The built-in trainer's `train` request: written by compile/diffusers.ts, exported as
 * schema/worker-train-request.schema.json (scripts/write-schema.ts), validated by the worker
 * (train/config.py) before it builds its Config. Every setting is resolved here, in core: a
 * request that leaves one out is E_USAGE in the worker, never a default.
 */
const int = (min: number) => z.int().min(min);
const path = z.string().min(1);

/** The `debug` hooks: exactly BUILTIN_TRAINER.debugHooks' keys, each any value (a hook reads its own). */
const DebugHooksSchema = z.strictObject(
  Object.fromEntries(Object.keys(BUILTIN_TRAINER.debugHooks).map((k) => [k, z.unknown().optional()])) as Record<keyof typeof BUILTIN_TRAINER.debugHooks, z.ZodOptional<z.ZodUnknown>>,
);

export const TrainRequestSchema = z.strictObject({
  base: path.meta({ description: "HF id, local diffusers folder, or single .safetensors file." }),
  arch: z.enum(WORKER_ARCHES).meta({ description: "The worker architecture (knowledge/builtin-trainer.ts); one it does not train is E_NOT_SUPPORTED." }),
  dataset: path.meta({ description: "Folder of images with same-name caption files." }),
  output_dir: path,
  name: z.string().min(1).meta({ description: "The LoRA's file stem." }),
  resolution: int(16).multipleOf(16),
  buckets: z
    .array(z.strictObject({ resolution: int(16), width: int(16).multipleOf(16), height: int(16).multipleOf(16) }))
    .min(1)
    .meta({
      description:
        "The training shapes core decided (plan/buckets.ts), grouped by resolution: each image trains once per resolution, in that resolution's bucket nearest its aspect (one square bucket: the center crop). Sides are multiples of 16 (8x VAE, 2x2 patches).",
    }),
  rank: int(1),
  alpha: z.number().positive(),
  learning_rate: z.number().positive(),
  steps: int(1),
  batch_size: int(1),
  gradient_accumulation: int(1),
  optimizer: z.enum(BUILTIN_TRAINER.optimizers),
  lr_scheduler: z.enum(LR_SCHEDULERS),
  warmup_steps: int(0),
  precision: z.enum(BUILTIN_TRAINER.precisions),
  gradient_checkpointing: z.boolean(),
  checkpointing_mode: z
    .enum(BUILTIN_TRAINER.checkpointingModes)
    .meta({ description: "What gradient_checkpointing recomputes when on: full (each block's forward) or selective (each block's attention outputs kept, every matmul recomputed: builtin-trainer.json selectiveCheckpointingKeep)." }),
  compile: z.boolean().meta({ description: "Regional torch.compile of the repeated blocks (refused with W_COMPILE_UNAVAILABLE without CUDA)." }),
  cuda_graphs: z.boolean().meta({ description: "Whole-step CUDA graph (refused with W_CUDA_GRAPH_UNAVAILABLE where this run cannot)." }),
  channels_last: z.boolean().meta({ description: "NHWC weights for a convolutional denoiser." }),
  fp8_matmul: z.boolean().meta({ description: "fp8 GEMMs for the frozen base (refused with W_FP8_MATMUL_UNAVAILABLE where the device cannot)." }),
  attention: z
    .enum(BUILTIN_TRAINER.attention.kernels)
    .meta({ description: "The attention kernel: sdpa (torch's) or fa4 (FlashAttention-4 through torch's SDPA; refused with W_ATTENTION_FALLBACK where it cannot run)." }),
  lora_compute: z
    .enum(BUILTIN_TRAINER.loraCompute.modes)
    .meta({ description: "The dtype the LoRA path computes in: fp32 (peft's: each adapted layer's input copied to fp32) or bf16 (the base's bf16 over fp32 master weights; a plain LoRA's linears only, over a bf16 base only)." }),
  sample_merge: z
    .enum(BUILTIN_TRAINER.sampleMerge.modes)
    .meta({
      description:
        `How in-training samples merge the LoRA (plan/sample-merge.ts): buffers (W + scale x B @ A written before each sample into a second copy of the targeted weights, kept for the run), per_call (each LoRA layer's merged weight made for the call), none (the LoRA path), compiled (the LoRA path through the training's compiled blocks; ${BUILTIN_TRAINER.sampleMerge.compiledWarning} renders eagerly when that fails). A layer the worker cannot merge keeps the LoRA path, with ${BUILTIN_TRAINER.sampleMerge.warning}.`,
    }),
  quantize: z.enum(BUILTIN_TRAINER.quantize),
  num_processes: int(1).meta({ description: "Data-parallel processes, one per GPU of the host." }),
  nodes: z
    .strictObject({ count: int(2), rank: int(0), endpoint: z.string().regex(/^[^\s:]+:\d{1,5}$/) })
    .optional()
    .meta({ description: "Several hosts (absent: this one alone): how many, this host's rank, node 0's host:port (torchrun's static rendezvous)." }),
  compile_cache_dir: path
    .optional()
    .meta({ description: "Where torch.compile's caches and cache artifacts, and FA4's compiled kernels, persist across runs (core: <loraspec cache>/compile, sent when the run compiles or runs FA4); absent: torch's defaults, FA4 compiles its kernels in each run." }),
  save_every: int(0),
  seed: z.int(),
  trigger_word: z.string().min(1),
  prefix_trigger: z.boolean().meta({ description: "A caption without the trigger gets it in front; false trains the captions as written." }),
  caption_extension: z.string().regex(/^\.\w+$/),
  train_text_encoder: z.boolean(),
  guidance_scale: z.number().positive().meta({ description: "FLUX.1 guidance-embedding value fed while training (1: none)." }),
  timestep_sampling: z.enum(TIMESTEP_SAMPLINGS).meta({ description: "Flow models: how sigma is drawn (regularize.py); SDXL draws uniform DDPM timesteps." }),
  caption_dropout: z.number().min(0).lt(1).meta({ description: "Share of samples trained on the empty caption (seeded per step)." }),
  shuffle_tags: z.boolean().meta({ description: "Shuffle comma-separated tags each step, the trigger's tag first (captions encoded per step)." }),
  noise_offset: z.number().min(0).meta({ description: "SDXL: noise += noise_offset x N(0,1) per image and channel (0: off)." }),
  min_snr_gamma: z.number().positive().nullable().meta({ description: "SDXL: Min-SNR loss weights min(SNR, gamma)/SNR (null: off)." }),
  ema_decay: z.number().gt(0).lt(1).nullable().meta({ description: "EMA of the LoRA weights: the saved LoRA and checkpoints hold the average (null: off)." }),
  max_sequence_length: int(1),
  reg_dataset: path.optional().meta({ description: "Regularisation images: their captions are never given the trigger." }),
  contract_hash: z.string().optional(),
  resume_from: z.string().min(1).optional().meta({ description: 'A checkpoint folder, a run output folder, or "latest".' }),
  targets: z.array(z.string().min(1)).min(1).meta({ description: "Modules of the denoiser the LoRA trains: peft suffixes, or block-scoped patterns with * for one block index (knowledge/lora-targets.ts)." }),
  network_type: z.enum(BUILTIN_TRAINER.networkTypes).meta({ description: "The adapter kind (contract network.type): peft LoraConfig, LoraConfig(use_dora), LoKrConfig or LoHaConfig." }),
  network_factor: z
    .union([z.literal(-1), z.int().min(1)])
    .meta({ description: "LoKr's Kronecker factor (peft decompose_factor; -1: the largest); other kinds ignore it." }),
  failure: z.strictObject({
    loss_spike_factor: z.number().gt(1).meta({ description: "Diverged when the mean loss of the recent window exceeds this factor x the baseline's mean (the contract's failure.loss_spike_factor)." }),
    loss_spike_recent_steps: int(1).meta({ description: "The loss-spike rule's recent window: the last this many steps (knowledge/loss-spike.ts)." }),
    loss_spike_baseline_steps: int(1).meta({ description: "The loss-spike rule's baseline: up to this many steps before the recent window (knowledge/loss-spike.ts)." }),
    loss_spike_first_step: int(2).meta({
      description: "The loss-spike rule is judged once the run has this many losses (a resumed run counts its checkpoint's); never before a baseline step exists (knowledge/loss-spike.ts).",
    }),
    on_oom: z.enum(["fail", "fallback"]),
    oom_fallbacks: z.array(z.enum(BUILTIN_TRAINER.oomFallbacks)),
  }),
  samples: z
    .strictObject({
      every: int(1),
      prompts: z.array(z.string().min(1)).min(1),
      seeds: z.array(z.int().min(0)).min(1),
      steps: int(1),
      guidance_scale: z.number().min(0),
      first: z.boolean().meta({ description: "Also render at step 0, before the first step (a fresh run only, not a resume)." }),
      width: int(16).multipleOf(16),
      height: int(16).multipleOf(16),
    })
    .optional()
    .meta({ description: "Sample images every `every` steps and at the end (compile/samples.ts; absent: none): each prompt x seed, written to <output_dir>/samples/." }),
  device: z.string().optional().meta({ description: "Tests and benches: force a torch device." }),
  debug: DebugHooksSchema.optional().meta({ description: "Test and bench hooks (BUILTIN_TRAINER.debugHooks): " + Object.entries(BUILTIN_TRAINER.debugHooks).map(([k, h]) => `${k}: ${h.doc}`).join("; ") + "." }),
});

export type DiffusersTrainRequest = z.output<typeof TrainRequestSchema>;
export type SettingKey = (typeof BUILTIN_TRAINER.settingKeys)[number];
/** The training settings of a request (BUILTIN_TRAINER.settingKeys): what the plan lists and the worker's settings event reports. */
export type BuiltinSettings = Pick<DiffusersTrainRequest, SettingKey>;

/** The JSON Schema the worker validates each train request against. */
export function trainRequestJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(TrainRequestSchema, { io: "input" }) as Record<string, unknown>;
}
