import { readFile } from "node:fs/promises";
import type { WordLookup } from "@loraspec/core/lint/clip-pretokenize.js";

let cached: Promise<WordLookup> | undefined;

/**
 * The English word list of the `word-list` npm package (274k words, one per line) as a lookup.
 * Searches the text for "\nword\n" instead of building a Set: one check costs a few ms, building
 * a Set would cost ~50 ms of `check`'s start-up.
 */
export function loadEnglishWords(): Promise<WordLookup> {
  cached ??= (async () => {
    const { default: path } = await import("word-list");
    const text = `\n${await readFile(path, "utf8")}\n`;
    return { has: (word: string) => word.length > 0 && !word.includes("\n") && text.includes(`\n${word.toLowerCase()}\n`) };
  })();
  return cached;
}
