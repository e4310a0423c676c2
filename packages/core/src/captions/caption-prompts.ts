import { fixCaption, normalizeCaption, type CaptionStyle, type CaptionTarget } from "./caption-rules.js";

/**
 * The instruction sent to a vision-language model, per caption style and target. Data, so a
 * prompt change is one edit; `{trigger}` is replaced by the trigger word.
 */
export const CAPTION_PROMPTS: Readonly<Record<CaptionStyle, Readonly<Record<CaptionTarget, string>>>> = {
  natural: {
    character:
      "Describe this photo in one or two plain English sentences for training an image model. Refer to the main person or subject only as \"{trigger}\". Do not describe their fixed identity (face, hair colour, body) in detail; do describe what varies: pose, expression, clothing, framing, lighting and background. No lists, no preamble.",
    style:
      "Describe the content of this image in one or two plain English sentences for training an image model on its visual style. Describe what is shown (subjects, setting, composition), not the style itself. No lists, no preamble.",
    product:
      "Describe this product photo in one or two plain English sentences for training an image model. Refer to the product only as \"{trigger}\". Describe the angle, setting, lighting and background, not the product's fixed design. No lists, no preamble.",
  },
  tags: {
    character:
      "List comma-separated booru-style tags for this image for training an image model: pose, expression, clothing, framing, lighting, background. Do not tag the subject's fixed identity. Tags only, no sentences.",
    style: "List comma-separated booru-style tags describing the content of this image (subjects, setting, composition). Tags only, no sentences.",
    product: "List comma-separated tags for this product photo: angle, setting, lighting, background. Tags only, no sentences.",
  },
};

export function captionPrompt(style: CaptionStyle, target: CaptionTarget, trigger: string): string {
  return CAPTION_PROMPTS[style][target].replaceAll("{trigger}", trigger || "the subject");
}

// Chatter VLMs like to add around a caption; removed so the trigger can really be first.
const PREAMBLES = [
  /^(sure|certainly|of course|okay|ok|absolutely)\b[!.,]*\s*/i,
  /^(here is|here's|below is) (a|the|your|an) ([\w-]+ ){0,3}(caption|description|tags)\b[^:]*:\s*/i,
  /^caption:\s*/i,
  /^tags:\s*/i,
  /^(the|this) (image|photo|picture) (shows|depicts|features|is of)\s+/i,
  /^(an? )?(image|photo|picture) of\s+/i,
];
// A closing offer ("Let me know if ...") after the caption.
const CLOSERS = [/\s*(let me know|i hope this|feel free to|would you like)\b.*$/i];

/** A model's raw answer cleaned, with what was taken off (the caller flags it). */
export function cleanCaption(raw: string, style: CaptionStyle): { text: string; removed: string[] } {
  // Tag lists sometimes come one per line: join them before whitespace is collapsed.
  const joined = style === "tags" ? raw.trim().replace(/\s*\n\s*/g, ", ") : raw;
  const removed: string[] = [];
  let text = normalizeCaption(joined);
  for (let changed = true; changed; ) {
    changed = false;
    for (const re of [...PREAMBLES, ...CLOSERS, /^["'`\u201c\u2018]+|["'`\u201d\u2019]+$/g]) {
      const next = text.replace(re, "").trim();
      if (next !== text) {
        const cut = text.match(re)?.[0]?.trim();
        if (cut) removed.push(cut);
        text = next;
        changed = true;
      }
    }
  }
  return { text, removed };
}

/** Cleans a model's raw answer and places the trigger first. */
export function finalizeCaption(raw: string, trigger: string, style: CaptionStyle): string {
  const { text } = cleanCaption(raw, style);
  return trigger ? fixCaption(text, trigger, style) : text;
}
