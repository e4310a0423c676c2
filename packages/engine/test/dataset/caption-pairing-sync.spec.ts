import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { pairSidecars } from "../../src/dataset/caption-sidecar.js";

/** The engine's caption pairing against the shared cases the worker's copy (train/data.py _caption_files) is tested on too. */
const { cases } = JSON.parse(readFileSync(new URL("./caption-pairing-cases.json", import.meta.url), "utf8")) as {
  cases: Array<{ ext: string; images: string[]; captions: string[]; pairs: Record<string, string> }>;
};

describe("caption pairing: the cases both sides are held to", () => {
  it.each(cases.map((c, i) => [i, c] as const))("case %i", (_i, c) => {
    expect(Object.fromEntries(pairSidecars(c.images, c.captions, c.ext))).toEqual(c.pairs);
  });
});
