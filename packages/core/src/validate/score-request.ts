import type { ValidationPlan } from "./plan-validation.js";

/** The `score` worker command's request (worker/loraspec_worker/score.py). Paths are absolute. */
export interface ScoreRequest {
  /** Hugging Face id or local folder of a CLIP model. */
  model: string;
  /** Optional DINOv2 (Hugging Face id or folder) for DINO subject fidelity. */
  dino_model?: string;
  device?: string;
  /** The training images (subject fidelity, mode collapse, near duplicates). */
  reference: string[];
  /** Check 1: [with, without] image pairs at equal seeds, for the LoRA and for the base. */
  trigger: { id: string; pairs: [string, string][]; base_pairs: [string, string][] }[];
  /** Image sets: fidelity to the reference, diversity, collapse, near duplicates; CLIP-T when texts are given. */
  sets: { id: string; images: string[]; texts?: string[]; paired?: string[]; candidates?: string[] }[];
  /** Check 4: each stacked image with its base image and each adapter alone. */
  stack: { id: string; items: { stack: string; base: string; alone: Record<string, string> }[] }[];
}

export interface SetScores {
  count: number;
  /** Mean cosine similarity to the reference images (CLIP-I; DINO when a DINO model is given). */
  fidelity_clip?: number;
  fidelity_dino?: number;
  /** Mean pairwise cosine distance among the images. */
  diversity: number;
  /** Share of images whose nearest reference image is the most common nearest one. */
  collapse_share?: number;
  /** Share of images at least as similar to one reference image as reference images are to each other. */
  near_duplicate_share?: number;
  /** Mean CLIP text-image cosine similarity (CLIP-T). */
  clip_t?: number;
  /** With texts and `paired` images: per image, its CLIP-T minus its paired image's (the base model's image of the same prompt and seed). */
  clip_t_delta?: number[];
  /**
   * With `candidates` (texts, each image's own text among them): per image, whether its own text is
   * the candidate it matches best (zero-shot, CLIP-T); `paired_own_text_best` the same for its paired image.
   */
  own_text_best?: boolean[];
  paired_own_text_best?: boolean[];
}

export interface ScoreResult {
  embedder: { clip: string; dino?: string };
  reference: { count: number; pairwise_clip?: number; pairwise_dino?: number };
  trigger: Record<string, { distance: number; base_distance: number; effect: number }>;
  sets: Record<string, SetScores>;
  stack: Record<string, { retention: Record<string, number>; shift: Record<string, number> }>;
}

export const DEFAULT_SCORE_MODEL = "openai/clip-vit-large-patch14";

/** Set ids the judge reads; kept in one place so request and verdicts agree. */
export const setId = {
  variations: (key: string) => `variations:${key}`,
  scenes: (key: string) => `scenes:${key}`,
  /** Check 1's images as sets (fidelity to the training images: the leak measure). */
  triggerOn: (key: string) => `trigger-on:${key}`,
  triggerOff: (key: string) => `trigger-off:${key}`,
  /** One novel scene's images (all seeds): the subject-in-scene measure reads each scene apart. */
  scene: (key: string, i: number) => `scene-${i}:${key}`,
  baseScene: (i: number) => `scene-${i}:base`,
  baseVariations: "variations:base",
  baseScenes: "scenes:base",
  baseTriggerOff: "trigger-off:base",
};

/** Builds the scoring request for a rendered plan; `image(id)` gives a job's image path. */
export function buildScoreRequest(params: {
  plan: ValidationPlan;
  image: (jobId: string) => string;
  reference: string[];
  model?: string;
  dinoModel?: string;
  device?: string;
}): ScoreRequest {
  const { plan, image } = params;
  const request: ScoreRequest = {
    model: params.model ?? DEFAULT_SCORE_MODEL,
    reference: params.reference,
    trigger: [],
    sets: [],
    stack: [],
  };
  if (params.dinoModel) request.dino_model = params.dinoModel;
  if (params.device) request.device = params.device;
  request.sets.push({ id: setId.baseVariations, images: plan.baseVariations.map(image) });
  const first = plan.weights[0];
  // The base's trigger-less images are the same jobs for every weight (the plan dedupes them).
  if (first && first.trigger.length > 0) request.sets.push({ id: setId.baseTriggerOff, images: first.trigger.map((t) => image(t.baseWithout)) });
  if (first && first.scenes.length > 0) {
    request.sets.push({ id: setId.baseScenes, images: first.scenes.map((s) => image(s.base)), texts: first.scenes.map((s) => s.text) });
    for (const i of new Set(first.scenes.map((s) => s.scene))) {
      request.sets.push({ id: setId.baseScene(i), images: first.scenes.filter((s) => s.scene === i).map((s) => image(s.base)) });
    }
  }
  for (const w of plan.weights) {
    request.trigger.push({
      id: w.key,
      pairs: w.trigger.map((t) => [image(t.with), image(t.without)]),
      base_pairs: w.trigger.map((t) => [image(t.baseWith), image(t.baseWithout)]),
    });
    if (w.trigger.length > 0) {
      request.sets.push({ id: setId.triggerOn(w.key), images: w.trigger.map((t) => image(t.with)) });
      request.sets.push({ id: setId.triggerOff(w.key), images: w.trigger.map((t) => image(t.without)) });
    }
    request.sets.push({ id: setId.variations(w.key), images: w.variations.map(image) });
    if (w.scenes.length > 0) {
      request.sets.push({
        id: setId.scenes(w.key),
        images: w.scenes.map((s) => image(s.job)),
        texts: w.scenes.map((s) => s.text),
        // the scene-swap measure: does each image still match its own scene best, where the base model's image of it does?
        paired: w.scenes.map((s) => image(s.base)),
        candidates: w.sceneCandidates,
      });
      for (const i of new Set(w.scenes.map((s) => s.scene))) {
        const items = w.scenes.filter((s) => s.scene === i);
        // each image against the base model's image of the same prompt and seed (clip_t_delta): not
        // a verdict yet, with the toy judge as embedder it flagged images that kept their scene (bench/RESULTS.md)
        request.sets.push({
          id: setId.scene(w.key, i),
          images: items.map((s) => image(s.job)),
          texts: items.map((s) => s.text),
          paired: items.map((s) => image(s.base)),
        });
      }
    }
  }
  if (plan.stack) {
    request.stack.push({
      id: "stack",
      items: plan.stack.items.map((it) => ({
        stack: image(it.stack),
        base: image(it.base),
        alone: Object.fromEntries(Object.entries(it.alone).map(([name, id]) => [name, image(id)])),
      })),
    });
  }
  return request;
}
