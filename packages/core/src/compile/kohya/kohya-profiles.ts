import type { BaseModelId } from "../../knowledge/base-models.js";
import type { Sourced } from "../../knowledge/types.js";
import type { KohyaScript } from "../../trainers/pins.js";
import { isLocalBaseForm } from "../../contract/base-path.js";
import { defaultKohyaFluxFiles } from "../../knowledge/base-load-forms.js";

/** How sd-scripts trains one base model: the script, the network module and fixed flags. */
export interface KohyaProfile extends Sourced {
  script: KohyaScript;
  networkModule: string;
  /** Flags always written for this base (model-specific, not from the contract). */
  fixed: Readonly<Record<string, string | number | boolean>>;
  /** True when the model must be BFL single files (the transformer, ae, clip_l, t5xxl). */
  singleFiles: boolean;
}

const DOC = "shared/reference/trainers.md";

const FLUX_FIXED = {
  model_type: "flux",
  // The default 3.5 is wrong for dev LoRAs: "specify 1.0 to disable guidance scale" (L-2).
  guidance_scale: 1.0,
  timestep_sampling: "flux_shift",
  model_prediction_type: "raw",
} as const;

export const KOHYA_PROFILES: Partial<Record<BaseModelId, KohyaProfile>> = {
  sdxl: {
    script: "sdxl_train_network.py",
    networkModule: "networks.lora",
    fixed: { no_half_vae: true },
    singleFiles: false,
    source: `${DOC} §2.1, §2.3 (docs/sdxl_train_network.md §3)`,
    asOf: "2026-02-16",
  },
  "flux1-dev": {
    script: "flux_train_network.py",
    networkModule: "networks.lora_flux",
    fixed: FLUX_FIXED,
    singleFiles: true,
    source: `${DOC} §2.1, §2.2 FLUX.1 table, §2.3 (docs/flux_train_network.md §4, §4.1)`,
    asOf: "2026-02-16",
  },
  "flux1-schnell": {
    script: "flux_train_network.py",
    networkModule: "networks.lora_flux",
    fixed: FLUX_FIXED,
    singleFiles: true,
    source: `${DOC} §2.1, §2.2 FLUX.1 table (t5xxl_max_token_length defaults to 256 for schnell)`,
    asOf: "2026-02-16",
  },
};

/** File names the FLUX.1 single files have in BFL's and comfyanonymous' repos: the first accepted name of each role (knowledge/base-load-forms.ts KOHYA_FLUX_FILE_ROLES). */
export const FLUX_SINGLE_FILE_NAMES = {
  transformer: { "flux1-dev": defaultKohyaFluxFiles("flux1-dev").transformer, "flux1-schnell": defaultKohyaFluxFiles("flux1-schnell").transformer } as Readonly<Record<string, string>>,
  ae: defaultKohyaFluxFiles("flux1-dev").ae,
  clipL: defaultKohyaFluxFiles("flux1-dev").clip_l,
  t5xxl: defaultKohyaFluxFiles("flux1-dev").t5xxl,
};

/**
 * sd-scripts' FLUX.1 script loads BFL single files only (L-6): the refusal (message and fix) when the base
 * needs them and `base.path` does not name them on this machine; undefined when the path is fine. One home
 * for compile-kohya (which throws it) and check (lint/trainer-support-rules.ts, which reports it first).
 */
export function kohyaSingleFilesRefusal(model: BaseModelId, path: string | undefined): { message: string; hint: string } | undefined {
  if (!KOHYA_PROFILES[model]?.singleFiles || (path !== undefined && isLocalBaseForm(path))) return undefined;
  const transformer = FLUX_SINGLE_FILE_NAMES.transformer[model] ?? "flux1-dev.safetensors";
  return {
    message: `kohya sd-scripts loads FLUX.1 only from BFL single files, not ${path ? `'${path}' (a Hugging Face id or a path that is not local)` : "a Hugging Face id"} (L-6).`,
    hint: `Download ${transformer}, ${FLUX_SINGLE_FILE_NAMES.ae}, ${FLUX_SINGLE_FILE_NAMES.clipL} and ${FLUX_SINGLE_FILE_NAMES.t5xxl} into one folder and set base.path to that folder (or to the transformer file) as a local path (/..., ./...), or use trainer.name: ai-toolkit, which loads the Hugging Face id.`,
  };
}

/** How sd-scripts can hold the frozen base: as is, or fp8 (`--fp8_base`); no int8 / nf4 loader. */
export const KOHYA_QUANTIZE: Sourced & { values: readonly string[] } = {
  values: ["none", "fp8"],
  source: `${DOC} §2.2 (--fp8_base; sd-scripts has no 4/8-bit integer base)`,
  asOf: "2026-02-16",
};

/** Contract optimizer -> sd-scripts `optimizer_type` (+ args). */
export const KOHYA_OPTIMIZERS: Sourced & { map: Readonly<Record<string, { type: string; args?: readonly string[] }>> } = {
  map: {
    adamw: { type: "AdamW" },
    adamw8bit: { type: "AdamW8bit" },
    lion8bit: { type: "Lion8bit" },
    prodigy: { type: "Prodigy" },
    // A fixed LR with AdaFactor needs its own schedule off (FluxGym 16 GB preset, trainers.md §5.1).
    adafactor: { type: "AdaFactor", args: ["relative_step=False", "scale_parameter=False", "warmup_init=False"] },
  },
  source: `${DOC} §2.2 optimizer list (add_optimizer_arguments help), §5.1 FluxGym AdaFactor preset`,
  asOf: "2026-02-16",
};

/**
 * FLUX.1 block swap by VRAM, from the sd-scripts doc's table: 12 GB swap 16, 10 GB swap 22,
 * 8 GB swap 28 (max 35). Above 12 GB the doc gives no number; the plan decides.
 */
export const FLUX_BLOCK_SWAP_BY_VRAM: Sourced & { rows: ReadonlyArray<{ maxVramGb: number; blocksToSwap: number }> } = {
  rows: [
    { maxVramGb: 8, blocksToSwap: 28 },
    { maxVramGb: 10, blocksToSwap: 22 },
    { maxVramGb: 12, blocksToSwap: 16 },
  ],
  source: `${DOC} §2.2 (docs/flux_train_network.md §6.1 VRAM table)`,
  asOf: "2026-02-16",
};

/** Options sd-scripts ignores (with only a log warning) when another one is set. */
export const KOHYA_IGNORED_TOGETHER: Sourced & { rules: ReadonlyArray<{ when: string; ignores: readonly string[] }> } = {
  rules: [{ when: "bucket_no_upscale", ignores: ["min_bucket_reso", "max_bucket_reso"] }],
  source:
    "kohya-ss/sd-scripts@ae72efb library/train_util.py L1020-1034 (BaseDataset.make_buckets: with bucket_no_upscale, make_buckets() is skipped and \"min_bucket_reso and max_bucket_reso are ignored\" is logged)",
  asOf: "2026-12-02",
};
