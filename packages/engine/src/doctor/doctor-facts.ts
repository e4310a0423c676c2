import { homedir } from "node:os";
import { join } from "node:path";

/**
 * What `loraspec doctor` checks against. Knowledge, not code: each record says where it was read.
 */
export const DOCTOR_FACTS = {
  node: {
    /** The oldest Node the CLI runs on; a test keeps it equal to package.json `engines.node`. */
    min: "20.9",
    source: "package.json engines.node",
    asOf: "2026-12",
  },
  huggingface: {
    /** How huggingface_hub finds its cache and token (the worker downloads base models with it). */
    cacheEnv: ["HF_HUB_CACHE", "HF_HOME"],
    tokenEnv: ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"],
    tokenFileEnv: "HF_TOKEN_PATH",
    source: "https://huggingface.co/docs/huggingface_hub/package_reference/environment_variables (HF_HOME, HF_HUB_CACHE, HF_TOKEN, HF_TOKEN_PATH)",
    asOf: "2026-11",
  },
  fal: {
    keyEnv: "FAL_KEY",
    keysPage: "https://fal.ai/dashboard/keys",
    source: "https://github.com/fal-ai/fal-js (libs/client reads credentials from the FAL_KEY environment variable)",
    asOf: "2026-11",
  },
  chromium: {
    /** Debian's chromium drives the web page's browser tests (scripts/setup-browser.mjs). */
    env: "LORASPEC_CHROMIUM",
    path: "/usr/bin/chromium",
    source: "scripts/setup-browser.mjs (Debian package `chromium`)",
    asOf: "2026-12",
  },
  /** How long the worker may take to import torch and answer `version` on a busy machine. */
  workerVersionTimeoutMs: 120_000,
} as const;

/** huggingface_hub's model cache: $HF_HUB_CACHE, else $HF_HOME/hub, else <XDG cache>/huggingface/hub. */
export function huggingFaceCacheDir(env: NodeJS.ProcessEnv): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  return join(huggingFaceHome(env), "hub");
}

/** huggingface_hub's home: $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function huggingFaceHome(env: NodeJS.ProcessEnv): string {
  if (env.HF_HOME) return env.HF_HOME;
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache"), "huggingface");
}

/** Compares dotted versions ("20.20.2" >= "20.9"). */
export function versionAtLeast(have: string, min: string): boolean {
  const a = have.replace(/^v/, "").split(/[.+-]/).map((n) => Number.parseInt(n, 10) || 0);
  const b = min.split(".").map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}
