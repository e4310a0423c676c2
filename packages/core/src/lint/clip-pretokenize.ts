/**
 * CLIP's pre-tokenization, as in openai/CLIP `simple_tokenizer.py` (also used by SDXL's and
 * FLUX's CLIP-L): lower-case, collapse whitespace, then split with
 * `'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+` and mark each word's end with `</w>`.
 *
 * This is the pre-tokenization step only. The byte-pair merges that follow need CLIP's 49k-entry
 * merges table, which cannot be downloaded here, so a rare word like `ohwx` may be split further by
 * the real tokenizer than shown. What this does show faithfully: digits become one token each,
 * punctuation and underscores split words, and case is ignored.
 */
const CLIP_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/gu;

export function clipPretokenize(text: string): string[] {
  const clean = text.normalize("NFC").replace(/\s+/g, " ").trim().toLowerCase();
  return [...clean.matchAll(CLIP_PATTERN)].map((m) => `${m[0]}</w>`);
}

/** A set-like lookup of English words (engine: loadEnglishWords reads the word-list package). */
export interface WordLookup {
  has(word: string): boolean;
}

/**
 * Splits a letters-only token into English words of at least `minLength` letters, if it is made
 * entirely of them (e.g. "redcar" -> ["red", "car"]). Returns undefined otherwise.
 */
export function splitIntoWords(token: string, words: WordLookup, minLength = 3): string[] | undefined {
  const memo = new Map<number, string[] | undefined>();
  const from = (i: number): string[] | undefined => {
    if (i === token.length) return [];
    if (memo.has(i)) return memo.get(i);
    let best: string[] | undefined;
    for (let j = token.length; j >= i + minLength; j--) {
      const piece = token.slice(i, j);
      if (!words.has(piece)) continue;
      const rest = from(j);
      if (rest) {
        best = [piece, ...rest];
        break;
      }
    }
    memo.set(i, best);
    return best;
  };
  return from(0);
}
