import { isTagCluster } from "../captions/caption-rules.js";
import { CAPTION_RULES, TAG_CAPTION_HEURISTIC } from "../knowledge/recipes.js";
import { clipPretokenize, splitIntoWords } from "./clip-pretokenize.js";
import type { Rule } from "./lint-rule.js";

/**
 * The trigger word (an English word or a rare token, as CLIP splits it) and the caption style
 * the base model's text encoder reads.
 * Registered in lint-contract.ts (RULE_FUNCTIONS).
 */
export const triggerWord: Rule = ({ c, model, opts }) => {
  if (!opts.words) return [];
  const words = opts.words;
  const trigger = c.trigger.word;
  // English words are found on CLIP's pre-tokenized words; the split shown is the real BPE one
  // when the engine has CLIP's merges table, else the pre-tokenization. A base without a CLIP
  // encoder (Qwen-Image, Z-Image, FLUX.2: LLM encoders) is told no CLIP split: it never sees one.
  const clip = model.textEncoders.some((t) => t.kind === "clip");
  const tokens = clipPretokenize(trigger);
  const shown = !clip ? "" : opts.tokenizer ? ` CLIP tokenizes it as [${opts.tokenizer(trigger).join(" ")}].` : ` CLIP pre-tokenizes it as [${tokens.join(" ")}].`;
  const bare = tokens.map((t) => t.replace(/<\/w>$/, ""));
  const english = bare.filter((t) => /^\p{L}+$/u.test(t) && t.length >= 3 && words.has(t));
  const whole = words.has(trigger.toLowerCase());
  const compound = !whole && english.length === 0 && /^\p{L}+$/u.test(trigger) ? splitIntoWords(trigger.toLowerCase(), words) : undefined;
  if (!whole && english.length === 0 && !(compound && compound.length > 1)) {
    if (!opts.tokenizer || !clip) return [];
    const split = opts.tokenizer(trigger);
    return [
      {
        rule: "trigger-tokens",
        severity: "info",
        message: `'${trigger}' is not an English word; CLIP tokenizes it as [${split.join(" ")}] (${split.length} token${split.length === 1 ? "" : "s"}).`,
        fix: "Nothing to do; a rare token that CLIP splits into few pieces binds fastest.",
        source: `${CAPTION_RULES.triggerAtStart.source}; tokenizer: CLIP BPE merges (open_clip bpe_simple_vocab_16e6)`,
        field: "trigger.word",
      },
    ];
  }
  const why = whole
    ? `'${trigger}' is an English word`
    : english.length > 0
      ? `'${trigger}' contains the English word${english.length > 1 ? "s" : ""} ${english.map((w) => `'${w}'`).join(", ")}`
      : `'${trigger}' is made of English words (${compound!.join(" + ")})`;
  return [
    {
      rule: "trigger-english-word",
      severity: "error",
      message: `${why}: the model already has a meaning for it, so the LoRA fights that prior.${shown}`,
      fix: "Use a rare made-up token that is not an English word, such as 'txcl' or 'ohwx', at the start of each caption.",
      source: `${CAPTION_RULES.triggerAtStart.source}; word list: npm word-list 4.1.0`,
      field: "trigger.word",
    },
  ];
};

export const captionStyle: Rule = ({ c, model, opts }) => {
  if (model.captionEncoder === "clip") return [];
  const captions = (opts.dataset?.images ?? []).map((i) => i.caption).filter((x): x is string => !!x);
  const tagged = captions.filter(isTagCluster);
  const scanSaysTags = captions.length > 0 && tagged.length / captions.length >= TAG_CAPTION_HEURISTIC.minTagShare;
  if (c.captions.style !== "tags" && !scanSaysTags) return [];
  const encoder = model.textEncoders.find((t) => t.kind === model.captionEncoder)?.name ?? model.captionEncoder;
  return [
    {
      rule: "captions-tags-on-t5",
      severity: "error",
      message:
        c.captions.style === "tags"
          ? `captions.style is 'tags' but ${model.label} reads captions with ${encoder}, which expects natural language.`
          : `${tagged.length} of ${captions.length} captions are tag clusters ("${tagged[0]!.slice(0, 60)}") but ${model.label} reads captions with ${encoder}.`,
      fix: "Write captions as sentences (e.g. 'txcl, a woman with short red hair smiling in a park') and set captions.style: natural; `loraspec caption` can rewrite them.",
      source: CAPTION_RULES.naturalForT5.source,
      field: "captions.style",
      files: scanSaysTags ? (opts.dataset?.images ?? []).filter((i) => i.caption && isTagCluster(i.caption)).slice(0, 5).map((i) => i.file) : undefined,
    },
  ];
};
