/**
 * The enumerations of the contract, without zod: the CLI imports these at start-up (option help)
 * and must not pay for loading the schema library.
 */
export const TRAINER_IDS = ["diffusers", "kohya", "ai-toolkit", "fal"] as const;
export type TrainerId = (typeof TRAINER_IDS)[number];
export const TARGETS = ["character", "style", "product"] as const;
export type Target = (typeof TARGETS)[number];
export const OPTIMIZERS = ["adamw", "adamw8bit", "prodigy", "adafactor", "lion8bit"] as const;
export const PRECISIONS = ["bf16", "fp16", "fp32"] as const;
export const QUANTIZATIONS = ["none", "fp8", "int8", "nf4"] as const;
export const LR_SCHEDULERS = ["constant", "constant_with_warmup", "cosine", "linear"] as const;
export const OOM_FALLBACKS = ["gradient_checkpointing", "smaller_batch", "optimizer_8bit", "quantize_base", "cpu_offload"] as const;
export const SAMPLERS = ["worker", "fal", "comfyui"] as const;
/** Adapter kinds (contract network.type; knowledge/network-types.ts says who trains and loads each). */
export const NETWORK_TYPES = ["lora", "dora", "lokr", "loha"] as const;
export type NetworkType = (typeof NETWORK_TYPES)[number];
/** LoRA key formats a run's output can be converted to (contract output.format; lora/options.ts TARGET_FORMATS). */
export const OUTPUT_FORMATS = ["diffusers", "kohya", "comfy"] as const;
