export type Severity = "error" | "warning" | "info";

/** One lint result. `rule` is a stable id (documented in RULES); `source` cites the knowledge record. */
export interface Finding {
  rule: string;
  severity: Severity;
  message: string;
  fix: string;
  source: string;
  /** Contract field the finding is about (`hyperparameters.learning_rate`). */
  field?: string;
  /** Dataset files involved, relative to the dataset folder (first few). */
  files?: string[];
}

export interface RuleInfo {
  id: string;
  severity: Severity;
  title: string;
  /** One of the guide's pitfall-table rows. */
  pitfall?: boolean;
}

import { TRAINER_RULES } from "./trainer-rule-ids.js";
import { NETWORK_RULES } from "./network-rule-ids.js";
import { REGULARISER_RULES } from "./regulariser-rule-ids.js";
import { NETWORK_KIND_RULES } from "./network-kind-rules.js";
import { BUCKET_RULES } from "./bucket-rules.js";
import { CROP_RULES } from "./crop-rules.js";

export const RULES: readonly RuleInfo[] = [
  { id: "trainer-unsupported-base", severity: "error", title: "Trainer does not support the base model (e.g. Kohya picked for FLUX.2)", pitfall: true },
  { id: "lr-sdxl-on-flux", severity: "error", title: "SDXL learning rate reused on a Flux-class model (above 1e-4)", pitfall: true },
  { id: "trigger-english-word", severity: "error", title: "Trigger is a real English word", pitfall: true },
  { id: "trigger-tokens", severity: "info", title: "How the trigger splits into CLIP tokens" },
  { id: "captions-tags-on-t5", severity: "error", title: "Tag-cluster captions on a T5/LLM-encoded model", pitfall: true },
  { id: "stack-over-limit", severity: "error", title: "Too many LoRAs stacked or combined weight above 1.0", pitfall: true },
  { id: "recipe-target-mismatch", severity: "error", title: "Character recipe reused for style (or the reverse)", pitfall: true },
  { id: "hardware-trainer-mismatch", severity: "error", title: "fal trainer on local hardware, or a local trainer on fal" },
  { id: "reg-images-unsupported", severity: "error", title: "regularisation images (dataset.reg_path) with a trainer that takes none" },
  { id: "trainer-version-too-old", severity: "error", title: "Trainer version older than the base model needs" },
  { id: "trainer-version-unpinned", severity: "warning", title: "Trainer version not pinned" },
  { id: "trainer-version-unchecked", severity: "info", title: "Trainer version is not a tag loraspec can compare" },
  { id: "trainer-setting-unsupported", severity: "error", title: "An optimizer or base precision (base.quantize) the trainer cannot take" },
  { id: "kohya-flux-single-files", severity: "error", title: "kohya with FLUX.1 and no local BFL single files in base.path (sd-scripts cannot load a Hugging Face id)" },
  { id: "lr-out-of-range", severity: "warning", title: "Learning rate outside the range for this base and target (an error 1.5x or more out)" },
  { id: "dataset-size-range", severity: "warning", title: "Dataset size above the target's range" },
  { id: "dataset-count-mismatch", severity: "warning", title: "Folder holds a different number of images than expected_images" },
  { id: "dataset-skipped", severity: "warning", title: "Files prep will leave out (unreadable, truncated, too small, symlinks, unreadable folders)" },
  { id: "dataset-duplicates", severity: "warning", title: "Exact or near duplicates: prep keeps one of each cluster" },
  { id: "dataset-orphan-captions", severity: "warning", title: "Caption files with no image beside them" },
  { id: "dataset-caption-unreadable", severity: "warning", title: "Caption files prep will not copy (not UTF-8, or too large to be a caption)" },
  { id: "dataset-not-prepared-unreadable", severity: "error", title: "Before prep: the trainer gets the dataset as it is, and it holds images the trainer cannot decode (the run would stop)" },
  { id: "dataset-not-prepared-unread", severity: "error", title: "Before prep: the trainer gets the dataset as it is and reads none of its images (sub-folders, formats it does not open)" },
  { id: "dataset-prepared-stale", severity: "error", title: "The prepared folder the run trains on was made before something prep reads changed (images, caption files, the keep/drop choices, the contract's prep settings)" },
  { id: "dataset-animated", severity: "warning", title: "Animated or multi-page images (GIF, WebP, TIFF): only the first frame trains" },
  { id: "reg-images-unreadable", severity: "error", title: "Regularisation images (handed to the trainer as they are) that it cannot open, or a folder of which it reads none" },
  { id: "reg-images-unread", severity: "warning", title: "Regularisation images the trainer never reads (sub-folders, formats it does not open)" },
  { id: "dataset-not-prepared", severity: "warning", title: "Before prep: the trainer gets the dataset as it is, with the files prep would leave out" },
  { id: "dataset-hidden-files", severity: "info", title: "Hidden files (names starting with \".\": macOS ._ copies, .DS_Store) that prep and the trainers leave out" },
  { id: "dataset-pins-invalid", severity: "warning", title: "Stored keep/drop choices (.loraspec/dataset-pins.json) that cannot be used: prep decides duplicates alone" },
  { id: "steps-passes-mismatch", severity: "warning", title: "Steps inconsistent with passes per image" },
  { id: "steps-out-of-range", severity: "warning", title: "Steps outside the target's range" },
  { id: "passes-per-image-out-of-range", severity: "warning", title: "Passes per image (steps x batch x accumulation x GPUs / images) far outside the target's recipe" },
  { id: "warmup-over-steps", severity: "error", title: "Warm-up as long as the run: the learning rate never reaches its value" },
  { id: "vram-below-profile", severity: "error", title: "VRAM ceiling below the estimated peak or the model's profile" },
  { id: "cost-over-limit", severity: "error", title: "Estimated cost above limits.max_cost_usd" },
  { id: "cost-unknown", severity: "warning", title: "No cost estimate to check limits.max_cost_usd against (a local GPU without hardware.price_per_hour): the ceiling is not enforced" },
  { id: "cost-limit-unchecked", severity: "error", title: "limits.max_cost_usd on fal with no price known for the endpoint: train refuses to submit unless --accept-unpriced" },
  { id: "walltime-over-limit", severity: "warning", title: "Estimated walltime above limits.max_walltime_hours" },
  { id: "no-save-every", severity: "warning", title: "No save-every-N checkpoints" },
  { id: "image-below-native", severity: "warning", title: "Images below the base model's native resolution" },
  { id: "mixed-aspect-single-crop", severity: "warning", title: "Mixed aspect ratios under a single square crop" },
  { id: "caption-missing", severity: "warning", title: "Images without a caption sidecar" },
  { id: "trigger-not-at-start", severity: "error", title: "Captions that do not start with the trigger (a warning for styles)" },
  { id: "known-defect-kohya-merge", severity: "info", title: "Kohya's Flux merge tool drops ai-toolkit keys (#1612) and breaks multi-LoRA merges (#1888)" },
  // --- check keeps its promises (issue 16: lint/promise-rules.ts, trigger-script.ts) ---
  { id: "dataset-below-minimum", severity: "error", title: "Fewer images than the target's minimum (counted as prep will keep them)" },
  { id: "failure-path-unset", severity: "warning", title: "No explicit failure path (failure.on_divergence, failure.on_oom)" },
  { id: "failure-continue-on-divergence", severity: "warning", title: "failure.on_divergence: continue trains on after a NaN loss" },
  { id: "save-every-over-steps", severity: "error", title: "save_every larger than the run's steps (no checkpoint before the end)" },
  { id: "fal-endpoint-base-mismatch", severity: "error", title: "fal endpoint that does not train the contract's base" },
  { id: "block-swap-unsupported", severity: "error", title: "hardware.block_swap with a trainer/base that cannot swap blocks" },
  { id: "block-swap-over-max", severity: "error", title: "hardware.block_swap above the trainer's maximum" },
  { id: "resolution-off-step", severity: "error", title: "A training resolution the trainer cannot take (built-in: not a multiple of 16; Kohya/ai-toolkit square: the latent off the model's patch or downsample step)" },
  { id: "resolution-rounded", severity: "warning", title: "A training resolution the trainer silently trains at another side (Kohya's square bucket, ai-toolkit's bucket divisibility, the VAE's floor)" },
  { id: "trigger-mixed-script", severity: "error", title: "Trigger mixes scripts (look-alike letters) or holds invisible characters" },
  { id: "trigger-confusable", severity: "warning", title: "Trigger written in look-alike letters of another script" },
  { id: "base-weights-missing", severity: "error", title: "Base weights not found at base.path (a warning on fal, which trains on its own copy: only validate's worker sampler loads base.path)" },
  { id: "trainer-not-ready", severity: "warning", title: "The local trainer (or a package its settings need) is not installed on this machine: train refuses until it is" },
  { id: "base-weights-download", severity: "info", title: "Base weights not in the local cache: the first run downloads them" },
  { id: "base-path-looks-local", severity: "warning", title: "base.path written as a Hugging Face id (models/sdxl) while a folder or file of that name is beside the contract: write ./models/sdxl to train on it" },
  { id: "base-architecture-mismatch", severity: "error", title: "Base weights are of another architecture than base.model" },
  { id: "base-weights-unreadable", severity: "error", title: "Base weights whose header or config cannot be read" },
  { id: "base-architecture-unknown", severity: "info", title: "Base weights whose architecture check cannot identify" },
  { id: "base-load-form", severity: "error", title: "Base weights in a form the trainer does not load (a folder of BFL single files for the built-in trainer or ai-toolkit, a diffusers folder for Kohya FLUX.1): knowledge/base-load-forms.ts" },
  { id: "base-component-missing", severity: "error", title: "A diffusers base folder with a component model_index.json lists missing, or without its config or weights" },
  { id: "base-files-missing", severity: "error", title: "Kohya FLUX.1: a BFL single file (transformer of base.model's variant, clip_l, t5xxl, ae) not in base.path's folder" },
  { id: "base-variant-mismatch", severity: "error", title: "Kohya FLUX.1: the transformer file is the other variant than base.model ([dev] has guidance_in keys, [schnell] none); sd-scripts trains the file's" },
  { id: "validation-stack-missing", severity: "error", title: "A validation.stack LoRA file that is not there (validate would stop at it), resolved from the contract's folder as validate resolves it" },
  { id: "validation-base-not-diffusers", severity: "warning", title: "validate's worker sampler loads a diffusers pipeline and base.path is not one (Kohya's FLUX.1 single files): validate needs --base" },
  { id: "output-format-base-shapes", severity: "error", title: "output.format set on a base whose layer sizes are not its architecture's (a tiny test base): the run would fail converting" },

  // Trainer traps (helper TRAINERS): lint/trainer-rules.ts.
  ...TRAINER_RULES,
  // network.targets / network.modules per trainer: lint/network-rules.ts.
  ...NETWORK_RULES,
  // Regularisers and schedules (issue 21): lint/regulariser-rules.ts.
  ...REGULARISER_RULES,
  // The adapter kind and output format: lint/network-kind-rules.ts.
  ...NETWORK_KIND_RULES,
  // Aspect buckets: lint/bucket-rules.ts.
  ...BUCKET_RULES,
  // dataset.crop against what prep did: lint/crop-rules.ts.
  ...CROP_RULES,
];

export function countBySeverity(findings: readonly Finding[]): Record<Severity, number> {
  const out: Record<Severity, number> = { error: 0, warning: 0, info: 0 };
  for (const f of findings) out[f.severity] += 1;
  return out;
}
