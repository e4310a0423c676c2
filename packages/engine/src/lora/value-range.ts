import { decodeToF32 } from "@loraspec/core/lora/dtype.js";
import { fitScales, type ValueRange } from "@loraspec/core/lora/plan-fit.js";
import type { PlannedTensor, SrcRef } from "@loraspec/core/lora/plan.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { SafetensorsFile } from "./safetensors-file.js";
import { forEachChunk } from "./tensor-chunks.js";

/** Largest |x| and smallest non-zero |x| of one tensor (read in chunks). */
export function valueRange(file: SafetensorsFile, key: string): ValueRange {
  const { dtype } = file.tensor(key);
  let maxAbs = 0, minAbs = Infinity;
  forEachChunk(file, key, (bytes) => {
    const values = decodeToF32(dtype, bytes);
    for (let i = 0; i < values.length; i++) {
      const a = Math.abs(values[i]!);
      if (a > maxAbs) maxAbs = a;
      if (a !== 0 && a < minAbs) minAbs = a;
    }
  });
  return { maxAbs, minAbs };
}

/**
 * The plan with every scaled factor kept in its dtype's range (core plan-fit.ts), each source's range
 * scanned at most once and only where needed (F16/F8 factors with a scale, the factors of a module
 * whose scale must be re-split). `widened`: output tensors written as F32 to keep their values.
 */
export function fitPlan(params: { plan: readonly PlannedTensor[]; inputs: readonly SafetensorsFile[]; file?: string }): { plan: PlannedTensor[]; widened: string[] } {
  const cache = new Map<string, ValueRange>();
  const range = (src: SrcRef) => {
    const id = `${src.input}\u0000${src.key}`;
    let r = cache.get(id);
    if (!r) cache.set(id, (r = valueRange(params.inputs[src.input]!, src.key)));
    return r;
  };
  return fitScales({ plan: params.plan, range, file: params.file });
}

/** The warning for factors written as F32 because no split of their scale fits their dtype. */
export function widenedWarning(widened: readonly string[], file?: string): LoraspecEvent {
  return {
    type: "warning",
    code: "W_LORA_WIDENED",
    message: `${widened.length} tensor(s) written as F32: their scaled values do not fit the file's dtype (kept exact instead of clamped): ${widened.slice(0, 4).join(", ")}${widened.length > 4 ? ", ..." : ""}`,
    file,
  };
}
