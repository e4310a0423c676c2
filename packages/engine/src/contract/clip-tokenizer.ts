import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { createClipBpe, type ClipTokenizer } from "@loraspec/core/lint/clip-bpe.js";
import { defaultCacheDir } from "../setup/trainer-install.js";
import { workerPython } from "../worker/worker-paths.js";

/** Where CLIP's merges table ships: package data of the open-clip-torch wheel, which
 * `npm run setup:worker` installs into the worker venv (data only, never imported). */
const BPE_FILE = join("open_clip", "bpe_simple_vocab_16e6.txt.gz");

/** Splits are cached per text: building the BPE table costs ~50-100 ms, a check must stay fast. */
const CACHE_LIMIT = 1000;

export interface LoadClipTokenizerParams {
  /** CLIP's merges table (.txt or .txt.gz); default $LORASPEC_CLIP_BPE, else the worker venv's. */
  bpePath?: string;
  /** JSON file remembering splits across runs; default ~/.cache/loraspec/clip-tokens.json. */
  cacheFile?: string | null;
}

/**
 * The real CLIP tokenizer when its merges table is on this machine; undefined otherwise (lint then
 * shows CLIP's pre-tokenization only). The table is read on the first text not yet in the cache.
 */
export function loadClipTokenizer(params: LoadClipTokenizerParams = {}): ClipTokenizer | undefined {
  const path = params.bpePath ?? process.env.LORASPEC_CLIP_BPE ?? findInVenv();
  if (!path || !existsSync(path)) return undefined;
  const cacheFile = params.cacheFile === undefined ? defaultCacheFile() : params.cacheFile;
  const cache = readCache(cacheFile, path);
  let bpe: ClipTokenizer | undefined;
  return (text: string) => {
    const hit = cache.splits[text];
    if (hit) return hit;
    if (!bpe) {
      const raw = readFileSync(path);
      bpe = createClipBpe((path.endsWith(".gz") ? gunzipSync(raw) : raw).toString("utf8"));
    }
    const split = bpe(text);
    if (Object.keys(cache.splits).length < CACHE_LIMIT) {
      cache.splits[text] = split;
      writeCache(cacheFile, cache);
    }
    return split;
  };
}

interface Cache {
  /** The merges table the splits came from: another table invalidates them. */
  table: string;
  splits: Record<string, string[]>;
}

function readCache(file: string | null, table: string): Cache {
  if (file && existsSync(file)) {
    try {
      const parsed = JSON.parse(readFileSync(file, "utf8")) as Cache;
      if (parsed.table === table && typeof parsed.splits === "object") return parsed;
    } catch {
      // A damaged cache is rebuilt.
    }
  }
  return { table, splits: {} };
}

function writeCache(file: string | null, cache: Cache): void {
  if (!file) return;
  try {
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(cache));
    renameSync(tmp, file);
  } catch {
    // The cache is an optimisation: a read-only home folder only costs speed.
  }
}

function defaultCacheFile(): string {
  return join(defaultCacheDir(), "clip-tokens.json");
}

function findInVenv(): string | undefined {
  // <venv>/bin/python -> <venv>/lib/python3.X/site-packages
  const lib = join(dirname(dirname(workerPython())), "lib");
  if (!existsSync(lib)) return undefined;
  for (const python of readdirSync(lib)) {
    const candidate = join(lib, python, "site-packages", BPE_FILE);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}
