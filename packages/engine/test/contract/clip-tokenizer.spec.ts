import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BASE_MODELS } from "@loraspec/core/knowledge/base-models.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { loadClipTokenizer } from "../../src/contract/clip-tokenizer.js";
import { loadEnglishWords } from "../../src/contract/english-words.js";
import { workerPython } from "../../src/worker/worker-paths.js";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDirsPerFile } from "../test-helpers.js";

/** Temp folders, removed when this file's tests are done. */
const tempDir = tempDirsPerFile("clip-cache-");

const oracle = fileURLToPath(new URL("../../../../worker/tests/oracle/clip_tokenize.py", import.meta.url));
const example = fileURLToPath(new URL("../../../../examples/character/lora.yaml", import.meta.url));

// Triggers people use, sentences, digits, punctuation and non-ASCII: each split must match.
const TEXTS = ["txcl", "ohwx", "sks", "zwx person", "a photo of a dog", "Hello, world!", "photo2026", "café au lait", "sks_dog-v2", "txcl, a woman smiling in a park"];

describe("CLIP BPE tokenizer", () => {
  // setup:worker installs open-clip-torch (data only) into the venv: the merges table is there.
  const tokenizer = loadClipTokenizer({ cacheFile: null });

  it("finds CLIP's merges table in the worker venv", () => {
    expect(tokenizer).toBeDefined();
  });

  it("splits exactly as transformers' CLIPTokenizer does with the same merges", () => {
    const bpe = process.env.LORASPEC_CLIP_BPE ?? findBpe();
    const result = spawnSync(workerPython(), [oracle, bpe], { input: JSON.stringify(TEXTS), encoding: "utf8" });
    expect(result.status, result.stderr).toBe(0);
    const expected = JSON.parse(result.stdout) as string[][];
    expect(TEXTS.map((t) => tokenizer!(t))).toEqual(expected);
  });

  it("remembers splits in its cache file and reads them back without the table", () => {
    const cacheFile = join(tempDir(), "clip-tokens.json");
    const first = loadClipTokenizer({ cacheFile })!;
    expect(first("ohwx person")).toEqual(tokenizer!("ohwx person"));
    const cached = JSON.parse(readFileSync(cacheFile, "utf8"));
    expect(cached.splits["ohwx person"]).toEqual(tokenizer!("ohwx person"));
    // A cached text is answered from the file (a planted entry proves the table was not read).
    cached.splits["planted"] = ["x"];
    writeFileSync(cacheFile, JSON.stringify(cached));
    expect(loadClipTokenizer({ cacheFile })!("planted")).toEqual(["x"]);
  });

  it("shows the real split in the trigger lint", async () => {
    const contract = parseContractText({ text: readFileSync(example, "utf8"), file: "lora.yaml" });
    const words = await loadEnglishWords();
    const english = lintContract({ ...contract, trigger: { ...contract.trigger, word: "sunset" } }, { words, tokenizer });
    const finding = english.find((f) => f.rule === "trigger-english-word");
    expect(finding?.message).toContain(`CLIP tokenizes it as [${tokenizer!("sunset").join(" ")}]`);
    const rare = lintContract({ ...contract, trigger: { ...contract.trigger, word: "txcl" } }, { words, tokenizer });
    const note = rare.find((f) => f.rule === "trigger-tokens");
    expect(note?.severity).toBe("info");
    expect(note?.message).toContain(`[${tokenizer!("txcl").join(" ")}]`);
  });

  it.each(BASE_MODELS.map((m) => [m.id, m.textEncoders.some((t) => t.kind === "clip")] as const))("%s (CLIP encoder: %s): the CLIP split is shown only to a base that has CLIP", async (id, clip) => {
    const contract = parseContractText({ text: readFileSync(example, "utf8"), file: "lora.yaml" });
    const words = await loadEnglishWords();
    const at = (word: string) => lintContract({ ...contract, base: { ...contract.base, model: id }, trigger: { ...contract.trigger, word } }, { words, tokenizer });
    expect(at("txcl").some((f) => f.rule === "trigger-tokens")).toBe(clip);
    const english = at("sunset").find((f) => f.rule === "trigger-english-word");
    expect(english?.severity).toBe("error");
    expect(english!.message.includes("CLIP")).toBe(clip);
  });
});

function findBpe(): string {
  const path = fileURLToPath(new URL("../../../../worker/.venv/lib/python3.11/site-packages/open_clip/bpe_simple_vocab_16e6.txt.gz", import.meta.url));
  if (!existsSync(path)) throw new Error(`no CLIP merges table at ${path}; run npm run setup:worker`);
  return path;
}
