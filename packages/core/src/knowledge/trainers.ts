import type { BaseModelId } from "./base-models.js";
import { TRAINER_PINS } from "../trainers/pins.js";
import { BUILTIN_TRAINER, builtinArchOf } from "./builtin-trainer.js";
import type { Sourced } from "./types.js";

/**
 * Which trainer supports which base model, and from which version. Trainer ids cover the four
 * backends a contract can pick plus two peers users come from (FluxGym, bmaltais' kohya_ss GUI),
 * kept so lint and docs can explain why a setup from those tools does not carry over.
 */
export type KnownTrainerId = "diffusers" | "kohya" | "ai-toolkit" | "fal" | "fluxgym" | "kohya_ss-gui" | "musubi-tuner";

export interface CompatibilityRecord extends Sourced {
  trainer: KnownTrainerId;
  base: BaseModelId;
  supported: boolean;
  /** First version known to support this base (tags compared with compareVersions). */
  minVersion?: string;
  /** How bad an older version is: error (cannot load the model) or warning (a known defect). */
  belowMin?: "error" | "warning";
  /** What to use instead when unsupported. */
  instead?: string;
  /** False when the trainer trains this base but loraspec has no compiler profile for it yet (check errors, compile refuses). */
  compiles?: false;
  /** fal only: the training endpoint for this base. */
  endpoint?: string;
}

const T = "shared/reference/trainers.md";
const SD = `${T} §0, §1.2 (sd-scripts README "Change History": v0.10.0, 2026-01-19, merged the sd3 branch (FLUX.1/SD3) into main; no FLUX.2/Qwen-Image/Z-Image)`;
const AT = `${T} §3.1 (ai-toolkit extensions_built_in/diffusion_models: flux, flux2, flux2_klein_4b/9b, qwen_image, zimage, sdxl)`;
const KLEIN_FIX =
  "https://github.com/ostris/ai-toolkit/pull/726 (\"Fix FLUX2 Klein load-time VRAM spikes on low-memory GPUs\", merged 2026-04-01)";
const DIFF = `${T} §5.5 (diffusers examples/dreambooth @58eb52c: LoRA scripts for sdxl, flux, flux2, flux2_klein, qwen_image, z_image, sd3)`;
const FAL = `${T} §4.1 (fal-js @381105e endpoints.ts)`;
const FG = `${T} §5.1 (fluxgym @678add2 models.yaml: flux-dev, flux-schnell only; runs sd-scripts flux_train_network.py)`;
const KSS = "loraspec issue #2 (source guide): bmaltais/kohya_ss pre-Flux (SD1.5/SDXL) workflows need tag v24.1.7";
const MT = `${T} §2.15 (kohya-ss/musubi-tuner docs/flux_2.md, zimage.md, qwen_image.md)`;
const AS_OF = "2026-08-23";

const rec = (r: Omit<CompatibilityRecord, "asOf"> & { asOf?: string }): CompatibilityRecord => ({ asOf: AS_OF, ...r });

export const COMPATIBILITY: readonly CompatibilityRecord[] = [
  // kohya sd-scripts
  rec({ trainer: "kohya", base: "sdxl", supported: true, source: `${T} §2.1 (sdxl_train_network.py)` }),
  rec({ trainer: "kohya", base: "flux1-dev", supported: true, minVersion: "v0.10.0", belowMin: "error", source: SD, note: "Before v0.10.0 FLUX.1 lived on the sd3 branch only." }),
  rec({ trainer: "kohya", base: "flux1-schnell", supported: true, minVersion: "v0.10.0", belowMin: "error", source: SD }),
  rec({ trainer: "kohya", base: "sd35-large", supported: true, compiles: false, minVersion: "v0.10.0", belowMin: "error", source: SD }),
  ...(["flux2-dev", "flux2-klein-4b", "flux2-klein-9b", "qwen-image", "zimage-turbo"] as const).map((base) =>
    rec({
      trainer: "kohya",
      base,
      supported: false,
      instead: "ai-toolkit or the built-in diffusers trainer (kohya's FLUX.2/Qwen/Z-Image support is in the separate musubi-tuner repo)",
      source: SD,
    }),
  ),
  // ai-toolkit (0.12.26 at 27a03a9, 2026-08-21)
  rec({ trainer: "ai-toolkit", base: "sdxl", supported: true, source: AT }),
  rec({ trainer: "ai-toolkit", base: "flux1-dev", supported: true, source: AT }),
  rec({ trainer: "ai-toolkit", base: "flux1-schnell", supported: true, source: AT, note: "Needs the schnell training adapter (assistant LoRA)." }),
  rec({ trainer: "ai-toolkit", base: "flux2-dev", supported: true, source: AT }),
  ...(["flux2-klein-4b", "flux2-klein-9b"] as const).map((base) =>
    rec({
      trainer: "ai-toolkit",
      base,
      supported: true,
      minVersion: "0.12.26",
      belowMin: "warning",
      source: `${AT}; ${KLEIN_FIX}`,
      note: "Klein load-time VRAM fixes landed March-April 2026; 0.12.26 (2026-08-21) is the earliest version we can confirm includes them.",
    }),
  ),
  rec({ trainer: "ai-toolkit", base: "qwen-image", supported: true, source: AT }),
  rec({ trainer: "ai-toolkit", base: "zimage-turbo", supported: true, source: AT, note: "Trains with ostris' Z-Image Turbo training adapter." }),
  rec({ trainer: "ai-toolkit", base: "sd35-large", supported: false, instead: "kohya (sd3_train_network.py, v0.10.0+) or diffusers", source: `${AT} (no sd3.5 in the UI model list)`, verified: false }),
  // built-in diffusers trainer (the worker): derived from its one table (knowledge/builtin-trainer.ts)
  ...(Object.keys(BUILTIN_TRAINER.bases) as BaseModelId[]).map((base): CompatibilityRecord => {
    const { arch, record } = builtinArchOf(base);
    return record.trains
      ? { trainer: "diffusers", base, supported: true, source: `${DIFF}; worker arch ${arch}`, asOf: record.asOf }
      : { trainer: "diffusers", base, supported: false, instead: `${record.instead} (the built-in trainer: ${record.reason})`, source: record.source, asOf: record.asOf };
  }),
  // fal.ai hosted trainers
  rec({ trainer: "fal", base: "flux1-dev", supported: true, endpoint: "fal-ai/flux-lora-fast-training", source: FAL }),
  rec({ trainer: "fal", base: "flux2-dev", supported: true, endpoint: "fal-ai/flux-2-trainer", source: FAL }),
  rec({ trainer: "fal", base: "flux2-klein-9b", supported: true, endpoint: "fal-ai/flux-2-klein-9b-base-trainer", source: FAL }),
  rec({ trainer: "fal", base: "qwen-image", supported: true, endpoint: "fal-ai/qwen-image-2512-trainer", source: FAL, note: "Qwen-Image-2512 trainer; no plain qwen-image trainer endpoint." }),
  rec({ trainer: "fal", base: "zimage-turbo", supported: true, endpoint: "fal-ai/z-image-turbo-trainer-v2", source: FAL }),
  ...(["sdxl", "flux1-schnell", "flux2-klein-4b", "sd35-large"] as const).map((base) =>
    rec({ trainer: "fal", base, supported: false, instead: "a local trainer (diffusers, kohya or ai-toolkit)", source: `${FAL}: no trainer endpoint for this base` }),
  ),
  // Peers (knowledge only: not selectable as contract trainers)
  rec({ trainer: "fluxgym", base: "flux1-dev", supported: true, source: FG }),
  rec({ trainer: "fluxgym", base: "flux1-schnell", supported: true, source: FG }),
  ...(["flux2-dev", "flux2-klein-4b", "flux2-klein-9b", "qwen-image", "zimage-turbo", "sdxl", "sd35-large"] as const).map((base) =>
    rec({ trainer: "fluxgym", base, supported: false, instead: "ai-toolkit or diffusers", source: FG }),
  ),
  rec({ trainer: "kohya_ss-gui", base: "sdxl", supported: true, minVersion: "v24.1.7", belowMin: "warning", source: KSS, verified: false, note: "Pre-Flux (SD1.5/SDXL) workflows: use tag v24.1.7; later tags moved to the FLUX branch of sd-scripts." }),
  rec({ trainer: "kohya_ss-gui", base: "flux1-dev", supported: true, source: `${T} §5.2 (kohya_ss v26.0.0)` }),
  rec({ trainer: "musubi-tuner", base: "flux2-dev", supported: true, source: MT }),
  rec({ trainer: "musubi-tuner", base: "qwen-image", supported: true, source: MT }),
  rec({ trainer: "musubi-tuner", base: "zimage-turbo", supported: true, source: MT }),
];

export function getCompatibility(trainer: KnownTrainerId, base: BaseModelId): CompatibilityRecord | undefined {
  return COMPATIBILITY.find((r) => r.trainer === trainer && r.base === base);
}

/** The trainer trains this base and loraspec compiles its config for it (what `check` accepts). */
export function trainerRuns(trainer: KnownTrainerId, base: BaseModelId): boolean {
  const r = getCompatibility(trainer, base);
  return !!r?.supported && r.compiles !== false;
}

/** Pinned versions loraspec's compilers target: one home, the setup pins (trainers/pins.ts). */
export const PINNED_TRAINER_VERSIONS: Readonly<Record<"kohya" | "ai-toolkit", Sourced & { version: string }>> = {
  kohya: { version: TRAINER_PINS.kohya.version, source: TRAINER_PINS.kohya.source, asOf: TRAINER_PINS.kohya.asOf },
  "ai-toolkit": { version: TRAINER_PINS["ai-toolkit"].version, source: TRAINER_PINS["ai-toolkit"].source, asOf: TRAINER_PINS["ai-toolkit"].asOf },
};
