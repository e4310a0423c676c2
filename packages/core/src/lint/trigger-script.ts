import { CAPTION_RULES } from "../knowledge/recipes.js";
import type { WordLookup } from "./clip-pretokenize.js";
import type { Finding } from "./finding.js";

/**
 * Look-alike letters: Cyrillic and Greek letters that Unicode lists as confusable with one Latin
 * letter (a subset of UTS #39 confusables.txt, the lower- and upper-case letters of the two scripts
 * that map to a single ASCII letter). A trigger typed with one of them is a different token from
 * the one the user will type at inference, and hides an English word from the word check.
 */
export const CONFUSABLES: { map: Readonly<Record<string, string>>; source: string; asOf: string } = {
  map: {
    // Cyrillic
    а: "a", в: "b", е: "e", һ: "h", і: "i", ј: "j", к: "k", м: "m", н: "h", о: "o", р: "p", с: "c", ѕ: "s", т: "t", у: "y", х: "x", ԁ: "d", ԛ: "q", ԝ: "w", ү: "y", ӏ: "l",
    А: "A", В: "B", Е: "E", Н: "H", І: "I", Ј: "J", К: "K", М: "M", О: "O", Р: "P", С: "C", Ѕ: "S", Т: "T", Х: "X", Ү: "Y", Ԁ: "D", Ԛ: "Q", Ԝ: "W",
    // Greek
    α: "a", ι: "i", κ: "k", ν: "v", ο: "o", ρ: "p", τ: "t", υ: "u", χ: "x", γ: "y",
    Α: "A", Β: "B", Ε: "E", Ζ: "Z", Η: "H", Ι: "I", Κ: "K", Μ: "M", Ν: "N", Ο: "O", Ρ: "P", Τ: "T", Υ: "Y", Χ: "X",
  },
  source: "Unicode UTS #39 confusables.txt (Cyrillic and Greek letters confusable with one Latin letter)",
  asOf: "2026-12-02",
};

/** Scripts a trigger's letters are sorted into; Han, Hiragana and Katakana count as one (Japanese), as in UTS #39's restriction levels. */
const SCRIPTS: ReadonlyArray<[string, RegExp]> = [
  ["Latin", /\p{Script=Latin}/u],
  ["Cyrillic", /\p{Script=Cyrillic}/u],
  ["Greek", /\p{Script=Greek}/u],
  ["Han/Kana", /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u],
  ["Hangul", /\p{Script=Hangul}/u],
  ["Arabic", /\p{Script=Arabic}/u],
  ["Hebrew", /\p{Script=Hebrew}/u],
  ["Armenian", /\p{Script=Armenian}/u],
  ["Thai", /\p{Script=Thai}/u],
  ["Devanagari", /\p{Script=Devanagari}/u],
];

/** Invisible characters that make two identical-looking triggers different tokens. */
const INVISIBLE = /[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u206a-\u206f\ufeff]/u;

const codepoint = (ch: string) => `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;

function scriptOf(ch: string): string | undefined {
  if (!/\p{L}/u.test(ch)) return undefined;
  return SCRIPTS.find(([, re]) => re.test(ch))?.[0] ?? "other";
}

/** The trigger with every look-alike replaced by the Latin letter it imitates. */
export function latinSkeleton(word: string): string {
  return [...word].map((ch) => CONFUSABLES.map[ch] ?? ch).join("");
}

/**
 * trigger-mixed-script: letters from more than one script, or invisible characters (error);
 * trigger-confusable: a whole-script look-alike of a Latin word (warning).
 */
export function triggerScriptFindings(word: string, words?: WordLookup): Finding[] {
  const chars = [...word];
  const invisible = chars.filter((ch) => INVISIBLE.test(ch));
  const scripts = [...new Set(chars.map(scriptOf).filter((s): s is string => !!s))];
  const lookalikes = chars.filter((ch) => CONFUSABLES.map[ch] !== undefined);
  const skeleton = latinSkeleton(word);
  const english = words && lookalikes.length > 0 && words.has(skeleton.toLowerCase().replace(INVISIBLE, "")) ? ` It reads as the English word '${skeleton}'.` : "";
  const source = `${CONFUSABLES.source}; ${CAPTION_RULES.triggerAtStart.source}`;
  if (invisible.length > 0 || scripts.length > 1) {
    const parts = [
      scripts.length > 1 ? `mixes ${scripts.join(" and ")} letters${lookalikes.length > 0 ? ` (${lookalikes.map((ch) => `'${ch}' ${codepoint(ch)} looks like Latin '${CONFUSABLES.map[ch]}'`).join(", ")})` : ""}` : "",
      invisible.length > 0 ? `holds invisible character(s) ${invisible.map(codepoint).join(", ")}` : "",
    ].filter(Boolean);
    return [
      {
        rule: "trigger-mixed-script",
        severity: "error",
        message: `trigger '${word}' ${parts.join(" and ")}: it looks like '${skeleton.replace(INVISIBLE, "")}' but is a different token, so a prompt typed by hand never fires the LoRA.${english}`,
        fix: "Type the trigger in one script, plain ASCII letters (e.g. 'txcl'), and use the same spelling in the captions.",
        source,
        field: "trigger.word",
      },
    ];
  }
  if (lookalikes.length === chars.length && /[a-z]/i.test(skeleton)) {
    return [
      {
        rule: "trigger-confusable",
        severity: "warning",
        message: `trigger '${word}' is written in ${scripts[0]} letters that look like the Latin '${skeleton}': typed in Latin it is a different token.${english}`,
        fix: "Use a trigger in the script you will type prompts in (plain ASCII letters, e.g. 'txcl').",
        source,
        field: "trigger.word",
      },
    ];
  }
  return [];
}
