import { LoraspecError } from "@loraspec/core/errors.js";
import { FLOAT_DTYPES } from "@loraspec/core/lora/dtype.js";
import { countNonFinite } from "@loraspec/core/lora/non-finite-bits.js";
import type { ParsedLora } from "@loraspec/core/lora/parse-lora.js";
import type { SafetensorsFile } from "./safetensors-file.js";
import { forEachChunk } from "./tensor-chunks.js";

export interface NonFinite {
  tensor: string;
  nan: number;
  inf: number;
}

/** NaN and Inf counts of the float tensors named (all of them by default); tensors with neither are left out. */
export function scanNonFinite(file: SafetensorsFile, names?: Iterable<string>): NonFinite[] {
  const out: NonFinite[] = [];
  for (const name of names ?? file.tensors.map((t) => t.name)) {
    const { dtype } = file.tensor(name);
    if (!FLOAT_DTYPES.has(dtype)) continue;
    let nan = 0, inf = 0;
    forEachChunk(file, name, (bytes) => {
      const c = countNonFinite(dtype, bytes);
      nan += c.nan;
      inf += c.inf;
    });
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
