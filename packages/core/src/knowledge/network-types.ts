import type { NetworkType, TrainerId } from "../contract/ids.js";
import { LoraspecError } from "../errors.js";
import type { Sourced } from "./types.js";

/**
 * The adapter kinds (contract network.type) as data: how each trainer trains it (or why it cannot)
 * and the keys its file holds. The compilers and lint/network-kind-rules.ts read this table only.
 */

export interface TrainerNetwork extends Sourced {
  /** How the trainer is told, as its own names (shown in plan/check output). */
  how?: string;
  /** Why it cannot, when it cannot: lint network-type-unsupported names network.type. */
  refused?: string;
}

export interface NetworkTypeRecord extends Sourced {
  title: string;
  /** Parameter names after the module stem in the saved file (lora-formats.md §2d). */
  keys: readonly string[];
  trainers: Readonly<Record<TrainerId, TrainerNetwork>>;
}

const LF = "shared/reference/lora-formats.md §2d";
const LYC = "KohakuBlueleaf/LyCORIS@f49d30d lycoris/kohya.py L47-L124 (algo, dora_wd, factor)";
const AIT = "ostris/ai-toolkit@27a03a9 toolkit/config_modules.py L166-L214 (NetworkConfig type, lokr_factor), toolkit/lora_special.py L403-L408 (dora, lokr modules)";
const PEFT = "huggingface/peft 0.21.2 (worker pin): LoraConfig use_dora, LoKrConfig decompose_factor, LoHaConfig";
const FAL = "shared/reference/trainers.md §4.1 (fal-js@381105e endpoint input types: no adapter-kind input)";
const AS_OF = "2026-12-02";
const FAL_LORA_ONLY: TrainerNetwork = { refused: "fal's trainer endpoints train a plain LoRA and take no adapter kind", source: FAL, asOf: "2026-08-02" };

export const NETWORK_TYPE_RECORDS: Readonly<Record<NetworkType, NetworkTypeRecord>> = {
  lora: {
    title: "LoRA",
    keys: ["lora_down.weight", "lora_up.weight", "alpha"],
    trainers: {
      diffusers: { how: "peft LoraConfig", source: PEFT, asOf: AS_OF },
      kohya: { how: "--network_module networks.lora", source: "kohya-ss/sd-scripts@ae72efb networks/lora.py", asOf: "2026-02-13" },
      "ai-toolkit": { how: "network.type: lora", source: AIT, asOf: "2026-08-21" },
      fal: { how: "the endpoint's LoRA", source: FAL, asOf: "2026-08-02" },
    },
    source: LF,
    asOf: AS_OF,
  },
  dora: {
    title: "DoRA (weight-decomposed LoRA)",
    keys: ["lora_down.weight", "lora_up.weight", "alpha", "dora_scale"],
    trainers: {
      diffusers: { how: "peft LoraConfig(use_dora=True)", source: PEFT, asOf: AS_OF },
      kohya: { how: "--network_module lycoris.kohya --network_args algo=lora dora_wd=True", source: LYC, asOf: "2025-10-04" },
      "ai-toolkit": { how: "network.type: dora", source: AIT, asOf: "2026-08-21" },
      fal: FAL_LORA_ONLY,
    },
    source: LF,
    asOf: AS_OF,
  },
  lokr: {
    title: "LoKr (Kronecker product)",
    keys: ["lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "alpha"],
    trainers: {
      diffusers: { how: "peft LoKrConfig(decompose_factor)", source: PEFT, asOf: AS_OF },
      kohya: { how: "--network_module lycoris.kohya --network_args algo=lokr factor=N", source: LYC, asOf: "2025-10-04" },
      "ai-toolkit": { how: "network.type: lokr, lokr_factor", source: AIT, asOf: "2026-08-21" },
      fal: FAL_LORA_ONLY,
    },
    source: LF,
    asOf: AS_OF,
  },
  loha: {
    title: "LoHa (Hadamard product)",
    keys: ["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "alpha"],
    trainers: {
      diffusers: { how: "peft LoHaConfig", source: PEFT, asOf: AS_OF },
      kohya: { how: "--network_module lycoris.kohya --network_args algo=loha", source: LYC, asOf: "2025-10-04" },
      "ai-toolkit": {
        refused: "ai-toolkit's NetworkConfig types are lora, locon, lorm and lokr (plus dora): it has no LoHa module",
        source: AIT,
        asOf: "2026-08-21",
      },
      fal: FAL_LORA_ONLY,
    },
    source: LF,
    asOf: AS_OF,
  },
};

/**
 * LoKr's default factor: -1, the largest factor of each dimension up to its square root (LyCORIS
 * kohya.py `factor` default, ai-toolkit `lokr_factor` default "-1 automatically finds the largest
 * factor", peft LoKrConfig decompose_factor default).
 */
export const LOKR_DEFAULT_FACTOR = {
  value: -1,
  source: `${LYC}; ostris/ai-toolkit@27a03a9 toolkit/config_modules.py L210-L211; peft tuners/lokr/config.py decompose_factor`,
  asOf: AS_OF,
} as const;

/** The factor a contract trains with (the default when it names none). */
export function lokrFactor(factor: number | undefined): number {
  return factor ?? LOKR_DEFAULT_FACTOR.value;
}

/** LyCORIS's pinned package, installed by `loraspec setup kohya` (sd-scripts does not require it). */
export const LYCORIS_PIN = {
  package: "lycoris-lora==3.2.0.post2",
  source: "KohakuBlueleaf/LyCORIS@f49d30d setup.py (name lycoris_lora, version 3.2.0.post2); kohya-ss/sd-scripts requirements.txt has no LyCORIS",
  asOf: "2025-10-04",
} as const;

/** Refuses (E_TRAINER_UNSUPPORTED naming network.type) an adapter kind this trainer cannot train. */
export function assertNetworkSupported(trainer: TrainerId, type: NetworkType): void {
  const rec = NETWORK_TYPE_RECORDS[type].trainers[trainer];
  if (rec.refused === undefined) return;
  const others = (Object.keys(NETWORK_TYPE_RECORDS) as NetworkType[]).filter((t) => NETWORK_TYPE_RECORDS[t].trainers[trainer].refused === undefined);
  throw new LoraspecError("E_TRAINER_UNSUPPORTED", `${trainer} cannot train network.type ${type}: ${rec.refused}.`, {
    field: "network.type",
    hint: `Use network.type ${others.join(" or ")} with ${trainer}, or trainer.name diffusers or kohya for ${type}.`,
  });
}

/**
 * Bases whose diffusers names split fused native projections (FLUX's qkv and single-block linear1;
 * lora/architectures.ts modules with several parts): a LoKr, LoHa or DoRA module on such a part
 * cannot be converted between namings exactly (a Kronecker/Hadamard delta does not split by rows),
 * so output.format is refused for them there (lint output-format-unsupported). SDXL, Qwen-Image and
 * Z-Image modules are whole in both namings: lora/plan-lycoris.ts renames them.
 */
export const FUSED_PROJECTION_BASES = {
  bases: ["flux1-dev", "flux1-schnell", "flux2-dev", "flux2-klein-4b", "flux2-klein-9b"] as readonly string[],
  source: "packages/core/src/lora/architectures.ts (flux1, flux2-*: modules with several diffusers parts); shared/reference/lora-formats.md §2b",
  asOf: "2026-12-02",
} as const;
