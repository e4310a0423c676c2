/**
 * Pure caption rules (no I/O): where the trigger sits, whether a caption is a tag cluster or a
 * sentence, whether a character caption mentions what varies between photos, and the fix that
 * puts the trigger first. `loraspec check`, `loraspec caption` and the web page share them.
 */

import { TAG_CAPTION_HEURISTIC } from "../knowledge/recipes.js";

export type CaptionStyle = "natural" | "tags";
export type CaptionTarget = "character" | "style" | "product";

export type CaptionFindingCode =
  | "caption-empty"
  | "trigger-missing"
  | "trigger-not-first"
  | "tags-on-natural-base"
  | "sentence-on-tags-style"
  | "no-variation-mentioned";

export interface CaptionFinding {
  code: CaptionFindingCode;
  severity: "error" | "warning";
  message: string;
  /** Whether `fixCaption` (`loraspec caption --fix`) repairs it. */
  fixable: boolean;
}

/**
 * Words that say what varies between photos of one subject (pose, lighting, background,
 * framing, clothing, expression). A character caption that names none of them teaches the
 * LoRA to bake those into the trigger. The list is deliberately broad: it flags captions
 * that mention none, it does not grade the ones that do.
 */
export const VARIATION_WORDS: Readonly<Record<string, readonly string[]>> = {
  pose: ["standing", "sitting", "lying", "walking", "running", "kneeling", "leaning", "pose", "posing", "looking", "facing", "profile", "turned", "arms", "hands", "holding", "crossed"],
  lighting: ["light", "lighting", "lit", "sunlight", "sunny", "shadow", "shadows", "backlit", "daylight", "night", "dim", "bright", "golden hour", "studio lighting", "neon", "overcast", "sunset", "sunrise"],
  background: ["background", "backdrop", "indoors", "outdoors", "outside", "inside", "room", "street", "park", "beach", "forest", "city", "kitchen", "office", "studio", "garden", "wall", "field", "sky"],
  framing: ["close-up", "closeup", "portrait", "full body", "full-body", "half body", "upper body", "headshot", "wide shot", "from above", "from below", "side view", "front view", "back view"],
  clothing: ["wearing", "dressed", "shirt", "jacket", "dress", "coat", "hat", "suit", "sweater", "t-shirt", "jeans", "hoodie", "glasses"],
  expression: ["smiling", "smile", "laughing", "serious", "frowning", "expression", "neutral", "surprised", "eyes closed"],
};

// Function words that almost every English sentence has and tag lists almost never do.
const SENTENCE_WORDS = new Set(["a", "an", "the", "is", "are", "of", "in", "on", "with", "and", "at", "while", "his", "her", "their", "its", "who", "which", "that"]);

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function triggerPattern(trigger: string, flags = "i"): RegExp {
  // Word boundaries that also work for triggers made of non-word characters (e.g. "ohwx-man").
  return new RegExp(`(^|[^\\p{L}\\p{N}_])${escapeRegExp(trigger)}(?=$|[^\\p{L}\\p{N}_])`, `${flags}u`);
}

/** Normalises whitespace and strips a leading byte-order mark. */
export function normalizeCaption(caption: string): string {
  return caption.replace(/^\uFEFF/, "").replace(/\s+/g, " ").trim();
}

/** True when the caption starts with the trigger word (case-insensitive, as a whole word). */
export function startsWithTrigger(caption: string, trigger: string): boolean {
  const text = normalizeCaption(caption);
  if (!trigger) return true;
  return new RegExp(`^${escapeRegExp(trigger)}(?=$|[^\\p{L}\\p{N}_])`, "iu").test(text);
}

export function containsTrigger(caption: string, trigger: string): boolean {
  if (!trigger) return true;
  return triggerPattern(trigger).test(normalizeCaption(caption));
}

/**
 * A tag cluster is a comma-separated list of short fragments with few function words:
 * "1girl, red hair, smiling, outdoors". A sentence has articles, verbs and prepositions.
 */
export function isTagCluster(caption: string): boolean {
  const text = normalizeCaption(caption);
  if (!text) return false;
  const parts = text.split(",").map((p) => p.trim()).filter(Boolean);
  if (parts.length < TAG_CAPTION_HEURISTIC.minParts) return false;
  const words = text.toLowerCase().split(/[^\p{L}\p{N}'-]+/u).filter(Boolean);
  const functionWords = words.filter((w) => SENTENCE_WORDS.has(w)).length;
  const meanPartWords = words.length / parts.length;
  return (
    meanPartWords <= TAG_CAPTION_HEURISTIC.maxMeanWordsPerPart &&
    functionWords / Math.max(words.length, 1) < TAG_CAPTION_HEURISTIC.maxFunctionWordShare
  );
}

/** Which kinds of variation the caption mentions (pose, lighting, background, ...). */
export function mentionedVariations(caption: string): string[] {
  const text = ` ${normalizeCaption(caption).toLowerCase()} `;
  return Object.entries(VARIATION_WORDS)
    .filter(([, words]) => words.some((w) => new RegExp(`(^|[^\\p{L}])${escapeRegExp(w)}(?=$|[^\\p{L}])`, "u").test(text)))
    .map(([kind]) => kind);
}

export interface CheckCaptionParams {
  caption: string | undefined;
  trigger?: string;
  /** The contract's trigger.placement: "anywhere" only asks that the trigger appear. */
  triggerPlacement?: "start" | "anywhere";
  /** Caption style the contract asks for. */
  style: CaptionStyle;
  target?: CaptionTarget;
  /**
   * True when the base model's text encoder reads prose (T5, Qwen): tag clusters are then a
   * finding even if the contract says "tags".
   */
  naturalLanguageEncoder?: boolean;
}

/** Every finding for one caption; an empty array means it is fine. */
export function checkCaption(params: CheckCaptionParams): CaptionFinding[] {
  const findings: CaptionFinding[] = [];
  const caption = normalizeCaption(params.caption ?? "");
  const trigger = params.trigger?.trim();
  if (!caption) {
    findings.push({ code: "caption-empty", severity: "error", message: "caption is missing or empty", fixable: false });
    return findings;
  }
  if (trigger && !startsWithTrigger(caption, trigger) && !(params.triggerPlacement === "anywhere" && containsTrigger(caption, trigger))) {
    const present = containsTrigger(caption, trigger);
    findings.push({
      code: present ? "trigger-not-first" : "trigger-missing",
      severity: "error",
      message: present ? `trigger "${trigger}" is not at the start of the caption` : `caption does not contain the trigger "${trigger}"`,
      fixable: true,
    });
  }
  const tags = isTagCluster(caption);
  if (tags && (params.style === "natural" || params.naturalLanguageEncoder)) {
    findings.push({
      code: "tags-on-natural-base",
      severity: "warning",
      message: "caption is a tag list, but this base model's text encoder reads natural-language sentences",
      fixable: false,
    });
  } else if (!tags && params.style === "tags" && !params.naturalLanguageEncoder && caption.split(/\s+/).length > 12) {
    findings.push({ code: "sentence-on-tags-style", severity: "warning", message: "contract asks for tag captions but this caption is a sentence", fixable: false });
  }
  if (params.target === "character" && mentionedVariations(caption).length === 0) {
    findings.push({
      code: "no-variation-mentioned",
      severity: "warning",
      message: "caption never mentions what varies (pose, lighting, background, framing, clothing, expression); the LoRA will bake those into the trigger",
      fixable: false,
    });
  }
  return findings;
}

/**
 * Puts the trigger at the start of the caption. A sentence keeps its words (a trigger used in
 * mid-sentence stays there, so the grammar survives); in a tag list the trigger's own tag moves
 * to the front. Idempotent.
 */
export function fixCaption(caption: string, trigger: string, style: CaptionStyle = "natural"): string {
  const text = normalizeCaption(caption);
  const word = trigger.trim();
  if (!word) return text;
  if (startsWithTrigger(text, word)) {
    // Keep the user's text, but use the trigger's canonical spelling.
    return word + text.slice(word.length);
  }
  if (!text) return word;
  if (style === "tags" || isTagCluster(text)) {
    const tags = text.split(",").map((t) => t.trim()).filter((t) => t && t.toLowerCase() !== word.toLowerCase());
    return [word, ...tags].join(", ");
  }
  // The trigger moves to the front: its other occurrence goes, so it is said once.
  const rest = text
    .replace(new RegExp(`(^|[^\\p{L}\\p{N}_])${escapeRegExp(word)}(?=$|[^\\p{L}\\p{N}_'\u2019])`, "giu"), "$1")
    .replace(/\s+([,.;:!?])/g, "$1")
    .replace(/\s{2,}/g, " ")
    .replace(/^[\s,;:]+/, "")
    .trim();
  return rest ? `${word}, ${rest}` : word;
}
