import { clipPretokenize } from "./clip-pretokenize.js";

/**
 * CLIP's byte-level BPE (openai/CLIP `simple_tokenizer.py`, the tokenizer of SDXL's and FLUX's
 * CLIP text encoders), built from CLIP's merges table (`bpe_simple_vocab_16e6.txt`: a version
 * line, then one "a b" merge per line; CLIP uses the first 48,894). Returns the tokens a text
 * becomes, each word's last token ending in `</w>`, exactly as the real tokenizer splits it.
 */
export type ClipTokenizer = (text: string) => string[];

/** How many merges CLIP's vocabulary uses: 49152 - 256 - 2 (openai/CLIP simple_tokenizer.py). */
const CLIP_MERGE_COUNT = 49152 - 256 - 2;

export function createClipBpe(mergesText: string): ClipTokenizer {
  const lines = mergesText.split("\n");
  const ranks = new Map<string, number>();
  // Line 0 is the version header.
  for (let i = 1; i <= CLIP_MERGE_COUNT && i < lines.length; i++) {
    const line = lines[i]!;
    if (line) ranks.set(line, i - 1);
  }
  const byteToUnicode = bytesToUnicode();
  const cache = new Map<string, string[]>();
  const encoder = new TextEncoder();

  const bpe = (word: string): string[] => {
    const hit = cache.get(word);
    if (hit) return hit;
    const symbols = [...word];
    if (symbols.length === 0) return [];
    symbols[symbols.length - 1] += "</w>";
    let parts = symbols;
    while (parts.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < parts.length - 1; i++) {
        const rank = ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      // Merge every occurrence of the best pair, left to right (as CLIP does).
      const a = parts[best]!;
      const b = parts[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i < parts.length - 1 && parts[i] === a && parts[i + 1] === b) {
          merged.push(a + b);
          i++;
        } else {
          merged.push(parts[i]!);
        }
      }
      parts = merged;
    }
    cache.set(word, parts);
    return parts;
  };

  return (text: string) =>
    clipPretokenize(text).flatMap((token) => {
      const word = token.slice(0, -"</w>".length);
      const mapped = [...encoder.encode(word)].map((byte) => byteToUnicode[byte]!).join("");
      return bpe(mapped);
    });
}

/** GPT-2/CLIP's reversible byte -> printable unicode character table. */
function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  }
  return table;
}
