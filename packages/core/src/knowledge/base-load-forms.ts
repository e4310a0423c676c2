import type { BaseModelId, ModelFamily } from "./base-models.js";
import type { Sourced } from "./types.js";

/**
 * The forms in which each trainer loads the base weights: one description per trainer, used by
 * check's preflight (engine project/preflight-base.ts, which looks at the files) and by the compilers
 * (kohya-args.ts names the FLUX.1 files by the same roles), so the files a compiled config names are
 * the files check verified.
 *
 * - `hf-id`: a Hugging Face id; the trainer downloads it (check looks in the local cache only).
 * - `diffusers-folder`: a folder with model_index.json, each component it lists (non-null) in its
 *   subfolder with its config (DIFFUSERS_COMPONENT_FILES); the loader opens every one.
 * - `transformer-folder`: a folder whose transformer/ subfolder is a diffusers model (config.json and
 *   weights); ai-toolkit reads the text encoders and VAE from the folder when text_encoder/ is there,
 *   else from the model's Hugging Face repo (downloaded).
 * - `single-file`: one .safetensors checkpoint.
 * - `kohya-flux-files`: BFL single files by role (KOHYA_FLUX_FILE_ROLES) in one folder; base.path is
 *   the folder or the transformer file.
 */
export type BaseLoadForm = "hf-id" | "diffusers-folder" | "transformer-folder" | "single-file" | "kohya-flux-files";

export interface TrainerLoadForms extends Sourced {
  trainer: "diffusers" | "kohya" | "ai-toolkit";
  /** Families this row covers; undefined: every other family of this trainer. */
  families?: readonly ModelFamily[];
  forms: readonly BaseLoadForm[];
  /** What the loader does with a single file (shown by check when it refuses one). */
  singleFileNote?: string;
}

const WORKER = "loraspec worker train/model.py load_pipeline (from_pretrained on a folder with model_index.json; from_single_file on a file; else E_FILE_NOT_FOUND)";
const KOHYA_SDXL = "kohya-ss/sd-scripts library/sdxl_model_util.py / train_util.load_target_model (a .safetensors/.ckpt file is a checkpoint, else diffusers from_pretrained)";
const KOHYA_FLUX = "kohya-ss/sd-scripts docs/flux_train_network.md §4 (--pretrained_model_name_or_path, --clip_l, --t5xxl, --ae: BFL single files), flux_train_network.py load_target_model (fp8 e4m3fn T5XXL accepted: 'Loaded fp8 T5XXL model')";
const AITK = "ostris/ai-toolkit toolkit/stable_diffusion_model.py and extensions_built_in/diffusion_models/*: SDXL from_single_file for a file else from_pretrained; FLUX/SD3/Qwen/Z-Image load <name_or_path>/transformer with from_pretrained, text encoders and VAE from the folder when text_encoder/ is there, else from extras_name_or_path (the HF repo)";
const AS_OF = "2026-12-05";

export const TRAINER_LOAD_FORMS: readonly TrainerLoadForms[] = [
  {
    trainer: "diffusers",
    families: ["sdxl"],
    forms: ["hf-id", "diffusers-folder", "single-file"],
    singleFileNote: "StableDiffusionXLPipeline.from_single_file needs the whole pipeline in the file (UNet, VAE, both text encoders) and fetches the config files of the model's Hugging Face repo",
    source: WORKER,
    asOf: AS_OF,
  },
  {
    trainer: "diffusers",
    forms: ["hf-id", "diffusers-folder", "single-file"],
    singleFileNote: "the pipeline's from_single_file needs every component (text encoders, VAE) in the one file; a BFL transformer file holds the transformer only",
    source: WORKER,
    asOf: AS_OF,
  },
  { trainer: "kohya", families: ["flux1"], forms: ["kohya-flux-files"], source: KOHYA_FLUX, asOf: AS_OF },
  { trainer: "kohya", forms: ["hf-id", "diffusers-folder", "single-file"], source: KOHYA_SDXL, asOf: AS_OF },
  { trainer: "ai-toolkit", families: ["sdxl"], forms: ["hf-id", "diffusers-folder", "single-file"], source: AITK, asOf: AS_OF },
  { trainer: "ai-toolkit", forms: ["hf-id", "diffusers-folder", "transformer-folder"], source: AITK, asOf: AS_OF, verified: false },
];

/** The load forms of `trainer` for a base of `family`; undefined for trainers that take no local base (fal). */
export function loadFormsOf(trainer: string, family: ModelFamily): TrainerLoadForms | undefined {
  const rows = TRAINER_LOAD_FORMS.filter((r) => r.trainer === trainer);
  return rows.find((r) => r.families?.includes(family)) ?? rows.find((r) => r.families === undefined);
}

/**
 * The file a component of a diffusers folder must have, by its class in model_index.json
 * (diffusers' `load_sub_model`: schedulers from scheduler_config.json, tokenizers from their
 * tokenizer files, processors from preprocessor_config.json, models from config.json + weights).
 */
export const DIFFUSERS_COMPONENT_FILES: Sourced & {
  /** First match by class-name suffix wins; `classSuffixes` empty: any class (a model). Plain data: the worker loads it (schema/builtin-trainer.json componentFiles). */
  kinds: ReadonlyArray<{ kind: "scheduler" | "tokenizer" | "processor" | "model"; classSuffixes: readonly string[]; anyOf: readonly string[]; weights: boolean }>;
  /** File-name endings of a model's weights or their shard index. */
  weightSuffixes: readonly string[];
} = {
  kinds: [
    { kind: "scheduler", classSuffixes: ["Scheduler"], anyOf: ["scheduler_config.json"], weights: false },
    { kind: "tokenizer", classSuffixes: ["Tokenizer", "TokenizerFast"], anyOf: ["tokenizer_config.json", "tokenizer.json", "vocab.json", "spiece.model"], weights: false },
    { kind: "processor", classSuffixes: ["FeatureExtractor", "ImageProcessor", "Processor"], anyOf: ["preprocessor_config.json"], weights: false },
    { kind: "model", classSuffixes: [], anyOf: ["config.json"], weights: true },
  ],
  weightSuffixes: [".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json"],
  source: "diffusers pipelines/pipeline_loading_utils.py load_sub_model (each component's from_pretrained on <folder>/<name>); transformers/diffusers weight names (diffusion_pytorch_model*.safetensors, model*.safetensors, *.bin, sharded *.index.json)",
  asOf: AS_OF,
};

/** A component's kind from its class name. */
export function componentKind(className: string) {
  return DIFFUSERS_COMPONENT_FILES.kinds.find((k) => k.classSuffixes.length === 0 || k.classSuffixes.some((s) => className.endsWith(s)))!;
}

/** True for a file name that holds (or indexes) a model's weights. */
export function isWeightsFile(name: string): boolean {
  return DIFFUSERS_COMPONENT_FILES.weightSuffixes.some((s) => name.endsWith(s));
}

export type KohyaFluxRole = "transformer" | "clip_l" | "t5xxl" | "ae";

/**
 * FLUX.1's BFL single files as sd-scripts takes them, by role: the names each role is accepted under
 * (first: the name the compiler writes when it has not looked at the folder), as BFL's and
 * comfyanonymous/flux_text_encoders' repos name them. The transformer is the variant's own file: a
 * folder with flux1-dev.safetensors is not a FLUX.1 [schnell] base.
 */
export const KOHYA_FLUX_FILE_ROLES: Sourced & {
  roles: ReadonlyArray<{ role: KohyaFluxRole; flag: string; names: (model: BaseModelId) => readonly string[]; what: string }>;
} = {
  roles: [
    { role: "transformer", flag: "pretrained_model_name_or_path", names: (m) => [m === "flux1-schnell" ? "flux1-schnell.safetensors" : "flux1-dev.safetensors"], what: "the FLUX.1 transformer" },
    { role: "clip_l", flag: "clip_l", names: () => ["clip_l.safetensors"], what: "the CLIP-L text encoder" },
    { role: "t5xxl", flag: "t5xxl", names: () => ["t5xxl_fp16.safetensors", "t5xxl_fp8_e4m3fn.safetensors"], what: "the T5-XXL text encoder" },
    { role: "ae", flag: "ae", names: () => ["ae.safetensors"], what: "the autoencoder (VAE)" },
  ],
  source: `${KOHYA_FLUX}; file names of black-forest-labs/FLUX.1-dev, FLUX.1-schnell and comfyanonymous/flux_text_encoders`,
  asOf: AS_OF,
};

/**
 * The file each role resolves to in a folder listing (`files`: the names there), or the missing roles.
 * `given`: base.path's file name when it names the transformer file itself (any name is taken).
 */
export function resolveKohyaFluxFiles(model: BaseModelId, files: readonly string[], given?: string): { files: Partial<Record<KohyaFluxRole, string>>; missing: KohyaFluxRole[] } {
  const out: Partial<Record<KohyaFluxRole, string>> = {};
  const missing: KohyaFluxRole[] = [];
  for (const r of KOHYA_FLUX_FILE_ROLES.roles) {
    const found = r.role === "transformer" && given ? given : r.names(model).find((n) => files.includes(n));
    if (found) out[r.role] = found;
    else missing.push(r.role);
  }
  return { files: out, missing };
}

/** The names the compiler writes when nobody looked at the folder (the first name of each role). */
export function defaultKohyaFluxFiles(model: BaseModelId): Record<KohyaFluxRole, string> {
  return Object.fromEntries(KOHYA_FLUX_FILE_ROLES.roles.map((r) => [r.role, r.names(model)[0]!])) as Record<KohyaFluxRole, string>;
}

/**
 * The denoiser config values of the real architectures, as core lora/architectures.ts builds their
 * module tables (what `output.format` conversion matches a LoRA's shapes against). A base whose
 * config differs (a tiny test base) trains, but its LoRA cannot be converted.
 */
export const REAL_DENOISER_CONFIG: Sourced & { byFamily: Partial<Record<ModelFamily, { folder: string; values: Readonly<Record<string, unknown>> }>> } = {
  byFamily: {
    sdxl: { folder: "unet", values: { block_out_channels: [320, 640, 1280], cross_attention_dim: 2048, transformer_layers_per_block: [1, 2, 10] } },
    flux1: { folder: "transformer", values: { num_layers: 19, num_single_layers: 38, num_attention_heads: 24, attention_head_dim: 128, joint_attention_dim: 4096 } },
    "qwen-image": { folder: "transformer", values: { num_layers: 60, num_attention_heads: 24, attention_head_dim: 128, joint_attention_dim: 3584 } },
  },
  source: "core lora/architectures.ts (SDXL 320/640/1280 channels, 2048 cross-attention, 1/2/10 transformer layers; FLUX.1 19 double + 38 single blocks, hidden 3072 = 24 x 128, T5 4096; Qwen-Image 60 blocks, hidden 3072, Qwen2.5-VL 3584); stabilityai/stable-diffusion-xl-base-1.0 unet/config.json, black-forest-labs/FLUX.1-dev transformer/config.json, Qwen/Qwen-Image transformer/config.json",
  asOf: AS_OF,
};

/**
 * FLUX.1 [dev] and [schnell] share every block; only [dev] has the guidance embedder, so a BFL transformer
 * file holds guidance_in.* keys iff it is [dev]. sd-scripts reads the variant from the file, not from the
 * contract (flux_utils.analyze_checkpoint_state: is_schnell when no guidance_in key), so a [dev] file under
 * base.model flux1-schnell trains a [dev] LoRA.
 */
export const FLUX1_VARIANT_KEYS: Sourced & { guidanceKey: string; withGuidance: BaseModelId; withoutGuidance: BaseModelId } = {
  guidanceKey: "guidance_in.",
  withGuidance: "flux1-dev",
  withoutGuidance: "flux1-schnell",
  source: "kohya-ss/sd-scripts library/flux_utils.py analyze_checkpoint_state (is_schnell = no guidance_in key); black-forest-labs FLUX.1-schnell transformer config guidance_embeds false",
  asOf: AS_OF,
};

