import type { ModelFamily } from "./base-models.js";
import type { Target } from "../contract/schema.js";
import type { Range, Sourced } from "./types.js";

/**
 * Training recipes: learning rates, dataset sizes, steps, captions, triggers, stacking.
 * The numbers come from the project's source guide (loraspec issue #2, April 2026) and the
 * trainers' own defaults where the reference notes found them.
 */
const GUIDE = "loraspec issue #2, \"The knowledge base\" (source guide, April 2026)";
const FAL_DEFAULTS = "shared/reference/trainers.md §4.1 (fal trainer defaults: flux-2-trainer lr 5e-5, portrait trainer 9e-5)";
const AS_OF = "2026-04-30";

export interface LrRangeRecord extends Sourced {
  families: readonly ModelFamily[];
  targets: readonly Target[];
  range: Range;
  /** The value `init` picks. */
  recommended: number;
}

export const LR_RANGES: readonly LrRangeRecord[] = [
  {
    families: ["flux1", "flux2", "qwen-image", "zimage", "sd3"],
    targets: ["character", "style", "product"],
    range: { min: 5e-5, max: 1e-4 },
    recommended: 1e-4,
    source: `${GUIDE}: Flux 5e-5 to 1e-4; ${FAL_DEFAULTS}`,
    asOf: AS_OF,
    note: "Flow-matching transformers; values above 1e-4 (the SDXL habit) overcook.",
  },
  { families: ["sdxl"], targets: ["character", "product"], range: { min: 1e-4, max: 2e-4 }, recommended: 1e-4, source: `${GUIDE}: SDXL character 1e-4 to 2e-4`, asOf: AS_OF },
  { families: ["sdxl"], targets: ["style"], range: { min: 3e-4, max: 5e-4 }, recommended: 4e-4, source: `${GUIDE}: SDXL style 3e-4 to 5e-4`, asOf: AS_OF },
];

export function getLrRange(family: ModelFamily, target: Target): LrRangeRecord | undefined {
  return LR_RANGES.find((r) => r.families.includes(family) && r.targets.includes(target));
}

export interface DatasetSizeRecord extends Sourced {
  target: Target;
  families?: readonly ModelFamily[];
  images: Range;
  recommended: number;
  advice: string;
}

export const DATASET_SIZES: readonly DatasetSizeRecord[] = [
  {
    target: "character",
    images: { min: 15, max: 30 },
    recommended: 20,
    advice: "15-30 images at 1024x1024 with varied poses, lighting and expressions",
    source: `${GUIDE}: character 15-30 at 1024x1024`,
    asOf: AS_OF,
  },
  { target: "style", families: ["sdxl"], images: { min: 30, max: 50 }, recommended: 40, advice: "30-50 images showing the style on varied subjects", source: `${GUIDE}: SDXL style 30-50`, asOf: AS_OF },
  { target: "style", images: { min: 20, max: 50 }, recommended: 30, advice: "20-50 images showing the style on varied subjects", source: `${GUIDE} (style, non-SDXL)`, asOf: AS_OF, verified: false },
  {
    target: "product",
    images: { min: 10, max: 30 },
    recommended: 15,
    advice: "clean high-resolution shots from several angles",
    source: `${GUIDE}: product, clean high-resolution shots from several angles`,
    asOf: AS_OF,
    verified: false,
    note: "The guide gives no count for products; 10-30 is ours.",
  },
];

export function getDatasetSize(target: Target, family: ModelFamily): DatasetSizeRecord {
  return DATASET_SIZES.find((r) => r.target === target && (!r.families || r.families.includes(family)))!;
}

export interface StepsRecord extends Sourced {
  target: Target;
  steps: Range;
  passesPerImage: number;
}

export const STEPS: readonly StepsRecord[] = [
  { target: "character", steps: { min: 1500, max: 2500 }, passesPerImage: 100, source: `${GUIDE}: character 1,500-2,500 steps, about 100 passes per image`, asOf: AS_OF },
  { target: "style", steps: { min: 1000, max: 2000 }, passesPerImage: 40, source: `${GUIDE}: style fewer steps`, asOf: AS_OF, verified: false, note: "The guide says only \"fewer\"; the range is ours." },
  { target: "product", steps: { min: 1000, max: 2000 }, passesPerImage: 80, source: `${GUIDE} (product, by analogy with character)`, asOf: AS_OF, verified: false },
];

export function getSteps(target: Target): StepsRecord {
  return STEPS.find((r) => r.target === target)!;
}

export interface PassesPerImageRecord extends Sourced {
  /** Times each image is seen over the run (steps x effective batch / images). */
  range: Range;
}

/**
 * Passes per image a recipe of the guide implies: its steps at batch 1 over its dataset sizes (character
 * 1,500-2,500 steps on 15-30 images: 50-167). The guide states steps at batch 1; a larger effective batch
 * (batch x accumulation x GPUs) multiplies the passes, so the steps range alone no longer bounds them.
 */
export function getPassesPerImage(target: Target, family: ModelFamily): PassesPerImageRecord {
  const steps = getSteps(target);
  const size = getDatasetSize(target, family);
  const round = (x: number) => Math.round(x);
  return {
    range: { min: round(steps.steps.min / size.images.max), max: round(steps.steps.max / size.images.min) },
    source: `derived: ${steps.source} over ${size.source}, at batch 1`,
    asOf: AS_OF,
    ...(steps.verified === false || size.verified === false ? { verified: false } : {}),
  };
}

/** Passes per image this far (or more) outside the recipe's range -> passes-per-image-out-of-range. */
export const PASSES_PER_IMAGE_TOLERANCE: Sourced & { factor: number } = {
  factor: 1.5,
  source: "ours: 1.5x past the recipe's passes per image, so a recipe's own edges (a 15-image set at 2,500 steps) stay quiet",
  asOf: "2026-12-05",
};

/** Steps and passes per image disagree by more than this fraction -> a warning. */
export const STEPS_PASSES_TOLERANCE: Sourced & { fraction: number } = {
  fraction: 0.25,
  source: "ours: passes x images / (batch x accumulation) within 25% of steps",
  asOf: "2026-11-29",
};

/** Epochs the plan aims for when it splits passes into repeats x epochs (kohya convention). */
export const TARGET_EPOCHS: Sourced & { epochs: number } = {
  epochs: 10,
  source: "ours: kohya-style repeats so a run has ~10 epochs (one checkpoint per epoch is common practice)",
  asOf: "2026-11-29",
};

export const CAPTION_RULES = {
  naturalForT5: {
    rule: "Natural-language captions for T5/LLM-encoded models (FLUX, Qwen-Image, Z-Image, SD3.5); tags are acceptable for SDXL (CLIP).",
    source: `${GUIDE}: captions`,
    asOf: AS_OF,
  },
  triggerAtStart: {
    rule: "The trigger is a unique, non-English token at the start of each caption.",
    source: `${GUIDE}: trigger`,
    asOf: AS_OF,
  },
} as const satisfies Record<string, Sourced & { rule: string }>;

export const STACKING: Sourced & { maxAdapters: number; maxCombinedWeight: number } = {
  maxAdapters: 3,
  maxCombinedWeight: 1.0,
  source: `${GUIDE}: stacking 2-3 adapters practical ceiling, combined weight <= 1.0`,
  asOf: AS_OF,
};

/**
 * When a caption reads as booru tags rather than a sentence: at least `minParts` comma-separated
 * parts averaging at most `maxMeanWordsPerPart` words, with fewer than `maxFunctionWordShare`
 * function words ("looking at viewer" has one; a sentence has one in every two or three words).
 * The folder counts as tag-captioned when at least `minTagShare` of its captions are.
 */
export const TAG_CAPTION_HEURISTIC: Sourced & {
  minParts: number;
  maxMeanWordsPerPart: number;
  maxFunctionWordShare: number;
  minTagShare: number;
} = {
  minParts: 3,
  maxMeanWordsPerPart: 3.5,
  maxFunctionWordShare: 0.25,
  minTagShare: 0.5,
  source: "ours: booru-style tag lists (Danbooru/WD14 taggers) are short comma-separated noun phrases; calibrated on the caption fixtures in packages/core/test/captions",
  asOf: "2026-11-29",
};

/** Ratio of the longest to the shortest side beyond which two images count as different aspects. */
export const MIXED_ASPECT_TOLERANCE: Sourced & { ratio: number } = {
  ratio: 1.05,
  source: "ours: aspect ratios within 5% of each other crop alike",
  asOf: "2026-11-29",
};

/**
 * Binding a character's trigger with class images (DreamBooth's prior preservation) on a flow transformer, from
 * loraspec's toy FLUX.1 world (issue 23): a 6.6 M-parameter toy base, not real weights, hence `verified: false`.
 * Without class images the LoRA learned a picture rule there (the caption without the trigger drew the character
 * too); with the base's own samples for the captions minus the trigger as reg images it bound the trigger.
 * Not a lint finding: real FLUX.1 character LoRAs are mostly trained without reg images (ai-toolkit's and FluxGym's
 * defaults), and toy evidence alone does not make a contract without them wrong. trigger-binding-data.spec.ts ties the
 * evidence to the reports in bench/data.
 */
export interface TriggerBindingRecord extends Sourced {
  families: readonly ModelFamily[];
  targets: readonly Target[];
  /** Class images per dataset image in the recipe that bound (40 for 20). */
  classImagesPerImage: number;
  advice: string;
  evidence: string;
}

export const TRIGGER_BINDING: TriggerBindingRecord = {
  families: ["flux1"],
  targets: ["character"],
  classImagesPerImage: 2,
  advice:
    "class images in dataset.reg_path: the base's own samples for your captions with the trigger removed (about twice as many as the dataset's images, some in settings the dataset lacks), each with that caption",
  evidence:
    "toy FLUX.1 base, built-in trainer, 20 character images: with generic reg images the caption without the trigger drew the character as often as with it (8/8 and 8/8); with 40 class images and the LoRA on the text stream, 24/24 with the trigger, 0-1/24 without, 9/9 on a background the dataset lacks, two training seeds (H200, 2026-12-04); adapting the whole transformer with class images bound the trigger but tied the character to its backgrounds (0-3 of 6 on the new one)",
  source:
    "bench/RESULTS.md, 'Does txcl bind its trigger on the new toy FLUX.1 base?' and 'The trigger binds on the toy FLUX.1 base, on the GPU'; bench/data/toy-flux-bind-probe-{cpu,gpu}-2026-12-04/; worker/toyworld/bind_probe.py BINDING",
  asOf: "2026-12-04",
  verified: false,
};

