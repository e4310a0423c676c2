import { LoraspecError } from "../errors.js";
import type { TargetFormat } from "./plan.js";

/**
 * The one check of convert/merge options, used by the CLI, the HTTP API (through the library)
 * and the library itself: every scale, weight and flag is refused up front, with the field named,
 * before any file is read. Pure.
 */
export const TARGET_FORMATS = ["diffusers", "kohya", "comfy"] as const;
export const MERGE_METHODS = ["cat", "linear", "ties", "dare", "svd"] as const;
export type MergeMethod = (typeof MERGE_METHODS)[number];

/** Ranges of the merge options, as data. */
export const MERGE_LIMITS = {
  source:
    "peft merge_utils (density in (0, 1]; ties/dare/svd re-factor to a rank >= 1); lora-formats.md §3a; weights: negative subtracts a LoRA, |w| above 10 has no use in practice (a LoRA is usually applied at 0.5-1.5)",
  asOf: "2026-12-02",
  weight: { min: -10, max: 10 },
  density: { minExclusive: 0, max: 1 },
  rank: { min: 1, max: 4096 },
  seed: { min: 0, max: 2 ** 32 - 1 },
} as const;

/**
 * Which options each method reads: the others are refused rather than silently ignored. "seed" is
 * listed exactly where the result depends on it (worker/loraspec_worker/merge.py): dare draws its
 * masks from it, ties samples its top-k bracket and factors with the randomized torch.svd_lowrank;
 * svd is QR + a full SVD of the small core (no randomness), linear and cat are plain sums.
 */
const METHOD_OPTIONS: Record<MergeMethod, ReadonlyArray<"rank" | "density" | "seed">> = {
  cat: [],
  linear: [],
  svd: ["rank"],
  ties: ["rank", "density", "seed"],
  dare: ["rank", "density", "seed"],
};

/** Whether merge options scale one LoRA (one input, `cat`: the delta x its weight, keys kept) rather than merge several. */
export function isScale(options: { inputs: ReadonlyArray<unknown>; method: string }): boolean {
  return options.inputs.length === 1 && options.method === "cat";
}

/** Whether a merge method's result depends on its seed (then the seed is part of its record). */
export function mergeUsesSeed(method: MergeMethod): boolean {
  return METHOD_OPTIONS[method].includes("seed");
}

export interface MergeOptionsInput {
  inputs: ReadonlyArray<{ path: string; weight: number }>;
  method: string;
  rank?: number;
  density?: number;
  seed?: number;
  to?: string;
}

export interface MergeOptions {
  inputs: Array<{ path: string; weight: number }>;
  method: MergeMethod;
  rank?: number;
  density?: number;
  seed?: number;
  to?: TargetFormat;
}

function usage(message: string, field: string, hint?: string): LoraspecError {
  return new LoraspecError("E_USAGE", message, { field, hint });
}

export function checkTarget(to: string | undefined, field = "--to"): TargetFormat | undefined {
  if (to === undefined) return undefined;
  if (!(TARGET_FORMATS as readonly string[]).includes(to)) throw usage(`${field} must be one of ${TARGET_FORMATS.join(", ")} (got "${to}")`, field);
  return to as TargetFormat;
}

/** Parses a number flag given as text (CLI) strictly: no empty string, no "1e999", no "0x10". */
export function numberFlag(text: string | undefined, field: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text.trim())) throw usage(`${field} must be a number (got "${text}")`, field);
  const n = Number(text);
  if (!Number.isFinite(n)) throw usage(`${field} must be a finite number (got "${text}")`, field);
  return n;
}

function inRange(value: number, field: string, min: number, max: number, integer: boolean, minExclusive = false): number {
  if (!Number.isFinite(value)) throw usage(`${field} must be a finite number (got ${value})`, field);
  if (integer && !Number.isInteger(value)) throw usage(`${field} must be a whole number (got ${value})`, field);
  if ((minExclusive ? value <= min : value < min) || value > max) {
    throw usage(`${field} must be in ${minExclusive ? "(" : "["}${min}, ${max}] (got ${value})`, field, `Ranges: ${MERGE_LIMITS.source}.`);
  }
  return value;
}

/** Checks and normalises merge options; throws E_USAGE naming the field. */
export function checkMergeOptions(params: MergeOptionsInput): MergeOptions {
  if (!(MERGE_METHODS as readonly string[]).includes(params.method)) throw usage(`--method must be one of ${MERGE_METHODS.join(", ")} (got "${params.method}")`, "--method");
  const method = params.method as MergeMethod;
  if (params.inputs.length < 1) throw usage("merge needs at least one LoRA file", "inputs", "loraspec merge A.safetensors:0.5 B.safetensors:0.3 -o out.safetensors (or one file, A.safetensors:0.6, to scale it)");
  if (params.inputs.length === 1 && method !== "cat") {
    throw usage(`--method ${method} merges two or more LoRA files; one file is scaled with --method cat (the default)`, "--method", `loraspec merge ${params.inputs[0]!.path}:${params.inputs[0]!.weight} --method cat -o out.safetensors writes it with its delta x ${params.inputs[0]!.weight}, same keys and rank.`);
  }
  const L = MERGE_LIMITS;
  const inputs = params.inputs.map((i) => {
    if (typeof i.path !== "string" || i.path === "") throw usage("each input needs a file path", "inputs[].path");
    if (typeof i.weight !== "number") throw usage(`the weight of ${i.path} must be a number`, `weight of ${i.path}`);
    return { path: i.path, weight: inRange(i.weight, `weight of ${i.path}`, L.weight.min, L.weight.max, false) };
  });
  if (inputs.length === 1) {
    const { path, weight } = inputs[0]!;
    if (weight === 0) throw usage(`scaling ${path} by 0 would erase the LoRA (its delta x 0 changes nothing)`, `weight of ${path}`, "Give the strength to bake in, e.g. 0.5 or 2 (a negative one inverts it).");
    if (params.to !== undefined) {
      throw usage("--to does not apply to scaling one LoRA: its keys and format are kept", "--to", `Scale it, then convert the result: loraspec convert out.safetensors --to ${params.to}.`);
    }
  }
  const allowed = METHOD_OPTIONS[method];
  for (const [name, value] of [["rank", params.rank], ["density", params.density], ["seed", params.seed]] as const) {
    if (value !== undefined && !allowed.includes(name)) {
      throw usage(`--${name} does not apply to --method ${method}`, `--${name}`, `--${name} is read by ${MERGE_METHODS.filter((m) => METHOD_OPTIONS[m].includes(name)).join(", ")}.`);
    }
  }
  return {
    inputs,
    method,
    rank: params.rank === undefined ? undefined : inRange(params.rank, "--rank", L.rank.min, L.rank.max, true),
    density: params.density === undefined ? undefined : inRange(params.density, "--density", L.density.minExclusive, L.density.max, false, true),
    seed: params.seed === undefined ? undefined : inRange(params.seed, "--seed", L.seed.min, L.seed.max, true),
    to: checkTarget(params.to),
  };
}

/**
 * `path.safetensors:0.8` -> {path, weight}, the one parser of `merge` inputs and `sample --lora`: the
 * weight is any number form numberFlag takes (`.5`, `+0.5`, `1e-1`, `-2`); a bare path has weight 1;
 * a drive letter (`C:1`) and a colon inside the path stay in the path.
 *
 * With `exists` (the engine's file check; core stays free of I/O) the files decide what a colon means:
 * a final `:<something>` that is not a number where the path before it exists is a mistyped weight,
 * E_USAGE naming it (`a.safetensors:abc` was E_FILE_NOT_FOUND for "a.safetensors:abc"); a file whose
 * name ends in `:<number>` is that file when the path before the colon is not one.
 */
export function parseWeightedPath(arg: string, exists?: (path: string) => boolean): { path: string; weight: number } {
  const m = /^(.*):([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)$/i.exec(arg);
  if (m && m[1] !== "" && !/^[a-z]$/i.test(m[1]!)) {
    if (exists && !exists(m[1]!) && exists(arg)) return { path: arg, weight: 1 };
    return { path: m[1]!, weight: Number(m[2]) };
  }
  const colon = arg.lastIndexOf(":");
  const [before, after] = [arg.slice(0, colon), arg.slice(colon + 1)];
  // No colon, a drive letter (`C:\\x`), or a colon inside a name (`a:b/x.safetensors`, "/" or "\\" after it): a path.
  if (exists && colon > 0 && !/^[a-z]$/i.test(before) && !/[\\/]/.test(after) && !exists(arg) && exists(before)) {
    throw usage(
      `'${after}' is not a weight: after the last ':' of '${arg}' comes a number in [${MERGE_LIMITS.weight.min}, ${MERGE_LIMITS.weight.max}] (the file ${before} exists; ${arg} does not)`,
      `weight of ${before}`,
      `Write ${before}:0.8, or ${before} alone for weight 1.`,
    );
  }
  return { path: arg, weight: 1 };
}

/** A weight given on the command line (merge input, sample --lora): finite and in the merge range. */
export function checkWeight(weight: number, field: string): number {
  return inRange(weight, field, MERGE_LIMITS.weight.min, MERGE_LIMITS.weight.max, false);
}
