import type { BaseModelId } from "../knowledge/base-models.js";
import type { Sourced } from "../knowledge/types.js";
import { LoraspecError } from "../errors.js";

/**
 * Which base models each external-trainer compiler can target.
 *
 * TO BE REPLACED by the knowledge base's compatibility matrix (packages/core/src/knowledge/) once
 * it lands: this local table exists only so the compilers can refuse what they cannot compile.
 */
export type ExternalTrainer = "kohya" | "ai-toolkit" | "fal";

interface SupportRecord extends Sourced {
  supported: boolean;
  /** Why not, and what to use instead (shown to the user). */
  reason?: string;
}

const T = "shared/reference/trainers.md";
const MUSUBI = "sd-scripts has no FLUX.2 / Qwen-Image / Z-Image support; kohya's sister repo musubi-tuner trains them (not compiled by loraspec yet): use ai-toolkit or fal";

const yes = (source: string): SupportRecord => ({ supported: true, source, asOf: "2026-08-23" });
const no = (reason: string, source: string): SupportRecord => ({ supported: false, reason, source, asOf: "2026-08-23" });

export const TRAINER_SUPPORT: Readonly<Record<ExternalTrainer, Readonly<Record<BaseModelId, SupportRecord>>>> = {
  kohya: {
    sdxl: yes(`${T} §2.1 (sdxl_train_network.py, networks.lora)`),
    "flux1-dev": yes(`${T} §2.1 (flux_train_network.py, networks.lora_flux)`),
    "flux1-schnell": yes(`${T} §2.1 (flux_train_network.py covers FLUX.1 dev/schnell)`),
    "flux2-dev": no(MUSUBI, `${T} §1.2, §2.15`),
    "flux2-klein-4b": no(MUSUBI, `${T} §1.2, §2.15`),
    "flux2-klein-9b": no(MUSUBI, `${T} §1.2, §2.15`),
    "qwen-image": no(MUSUBI, `${T} §1.2, §2.15`),
    "zimage-turbo": no(MUSUBI, `${T} §1.2, §2.15; sd-scripts#2243`),
    "sd35-large": no("sd3_train_network.py exists but loraspec does not compile it yet (its network module is unsettled, trainers.md L-9): use ai-toolkit", `${T} §2.13 L-9`),
  },
  "ai-toolkit": {
    sdxl: yes(`${T} §3.1 (arch sdxl)`),
    "flux1-dev": yes(`${T} §3.1-3.3 (arch flux, train_lora_flux_24gb.yaml)`),
    "flux1-schnell": yes(`${T} §3.2 (train_lora_flux_schnell_24gb.yaml with the schnell training adapter)`),
    "flux2-dev": yes(`${T} §3.1 (arch flux2)`),
    "flux2-klein-4b": yes(`${T} §3.1 (arch flux2_klein_4b)`),
    "flux2-klein-9b": yes(`${T} §3.1 (arch flux2_klein_9b)`),
    "qwen-image": yes(`${T} §3.1, §3.3 (arch qwen_image, train_lora_qwen_image_24gb.yaml)`),
    "zimage-turbo": yes(`${T} §3.1 (zimage:turbo with the training adapter)`),
    "sd35-large": no("ai-toolkit trains SD3.5 but loraspec has no ai-toolkit profile for it yet: use the built-in diffusers trainer", `${T} §3.2`),
  },
  fal: {
    sdxl: no("fal.ai has no SDXL trainer endpoint: use kohya, ai-toolkit or the built-in trainer", `${T} §4.1`),
    "flux1-dev": yes(`${T} §4.1 (fal-ai/flux-lora-fast-training, flux-lora-portrait-trainer, turbo-flux-trainer)`),
    "flux1-schnell": no("fal.ai's FLUX.1 trainers train on FLUX.1 [dev] only", `${T} §4.1`),
    "flux2-dev": yes(`${T} §4.1 (fal-ai/flux-2-trainer)`),
    "flux2-klein-4b": no("fal.ai has no FLUX.2 [klein] 4B trainer endpoint: use ai-toolkit", `${T} §4.1`),
    "flux2-klein-9b": yes(`${T} §4.1 (fal-ai/flux-2-klein-9b-base-trainer)`),
    "qwen-image": yes(`${T} §4.1 (fal-ai/qwen-image-2512-trainer)`),
    "zimage-turbo": yes(`${T} §4.1 (fal-ai/z-image-turbo-trainer-v2)`),
    "sd35-large": no("fal.ai has no SD3.5 trainer endpoint", `${T} §4.1`),
  },
};

/** Throws E_TRAINER_UNSUPPORTED when `trainer` cannot train `model`. */
export function assertTrainerSupports(trainer: ExternalTrainer, model: BaseModelId): void {
  const record = TRAINER_SUPPORT[trainer][model];
  if (record.supported) return;
  throw new LoraspecError("E_TRAINER_UNSUPPORTED", `${trainer} cannot train a LoRA for base model "${model}": ${record.reason}`, {
    field: "trainer.name",
    hint: `Change trainer.name or base.model in the contract (source: ${record.source}).`,
  });
}
