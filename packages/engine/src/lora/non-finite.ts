import { LoraspecError } from "@loraspec/core/errors.js";
import { dtypeBits, FLOAT_DTYPES } from "@loraspec/core/lora/dtype.js";
import { countNonFinite } from "@loraspec/core/lora/non-finite-bits.js";
import type { ParsedLora } from "@loraspec/core/lora/parse-lora.js";
import type { SafetensorsFile } from "./safetensors-file.js";

// Bytes decoded per step: a 2 GiB tensor is scanned without holding it in memory.
const CHUNK_BYTES = 4 << 20;

let scratchBuf = new Uint8Array(0);
/** One reused read buffer (reads are synchronous, so no two scans share it at once). */
function scratch(bytes: number): Uint8Array {
  if (scratchBuf.byteLength < bytes) scratchBuf = new Uint8Array(Math.max(bytes, 1 << 16));
  return scratchBuf;
}

export interface NonFinite {
  tensor: string;
  nan: number;
  inf: number;
}

/** NaN and Inf counts of the float tensors named (all of them by default); tensors with neither are left out. */
export function scanNonFinite(file: SafetensorsFile, names?: Iterable<string>): NonFinite[] {
  const out: NonFinite[] = [];
  for (const name of names ?? file.tensors.map((t) => t.name)) {
    const t = file.tensor(name);
    if (!FLOAT_DTYPES.has(t.dtype)) continue;
    const elem = Math.max(1, dtypeBits(t.dtype) / 8);
    const step = Math.max(elem, CHUNK_BYTES - (CHUNK_BYTES % elem));
    const buf = scratch(Math.min(step, t.end - t.begin));
    let nan = 0, inf = 0;
    for (let at = t.begin; at < t.end; at += step) {
      const bytes = buf.subarray(0, Math.min(step, t.end - at));
      file.readIntoSync(at, bytes);
      const c = countNonFinite(t.dtype, bytes);
      nan += c.nan;
      inf += c.inf;
    }
    if (nan || inf) out.push({ tensor: name, nan, inf });
  }
  return out;
}

/**
 * Refuses a LoRA whose placed factors hold NaN or Inf, before any work: converted it would carry them
 * into every image (black or noise), and the worker's merges cannot factor them (linalg.svd fails).
 * The same refusal as a NaN alpha (core plan.ts checkPlannable); `inspect` lists them all.
 */
export function assertFinite(file: SafetensorsFile, parsed: ParsedLora, path: string): void {
  assertFiniteKeys(file, factorKeys(parsed), path);
}

/** The placed modules' down and up factors (what assertFinite scans). */
export function factorKeys(parsed: ParsedLora): string[] {
  return parsed.placed.flatMap((m) => [m.keys.down, m.keys.up].filter((k): k is string => k !== undefined));
}

/** The same refusal for the tensors named (a scaled copy's LoKr/LoHa factors too). */
export function assertFiniteKeys(file: SafetensorsFile, keys: Iterable<string>, path: string): void {
  const bad = scanNonFinite(file, new Set(keys));
  if (bad.length === 0) return;
  const list = bad.map((b) => `${b.tensor} (${b.nan} NaN, ${b.inf} Inf)`);
  throw new LoraspecError("E_NOT_SUPPORTED", `${bad.length} LoRA factor(s) hold NaN or Inf values: ${list.slice(0, 4).join(", ")}${bad.length > 4 ? ", ..." : ""}`, {
    file: path,
    field: `tensor "${bad[0]!.tensor}"`,
    hint: "The file is broken (a diverged or badly saved training); `loraspec inspect` lists every such tensor. Use an earlier checkpoint.",
    details: { tensors: bad },
  });
}
