import { LoraspecError } from "@loraspec/core/errors.js";
import { decodeToF32, dtypeBits, encodeFromF32 } from "@loraspec/core/lora/dtype.js";
import type { PlacePart, PlannedTensor } from "@loraspec/core/lora/plan.js";
import type { SafetensorsFile } from "./safetensors-file.js";
import type { OutputTensor } from "./write-safetensors.js";

/**
 * Turns planned tensors into writer inputs whose bytes are produced one tensor at a time.
 * Blocks that are whole rows of a source with factor 1 and the same dtype are byte copies
 * (no decode); anything else is computed in f32 and rounded once (nearest even) to the output dtype.
 */
export function executePlan(params: { plan: PlannedTensor[]; inputs: SafetensorsFile[] }): OutputTensor[] {
  const { inputs } = params;
  // A small cache: fused sources are read once for each of their 3-4 parts.
  const cache = new Map<string, Promise<Uint8Array>>();
  const bytesOf = (input: number, key: string): Promise<Uint8Array> => {
    const id = `${input}\u0000${key}`;
    let hit = cache.get(id);
    if (!hit) {
      hit = inputs[input]!.readBytes(key);
      cache.set(id, hit);
      if (cache.size > 8) cache.delete(cache.keys().next().value!);
    }
    return hit;
  };
  return params.plan.map((t) => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    data: async () => {
      if (t.op.op === "scalar") return encodeFromF32(t.dtype, new Float32Array([t.op.value]));
      const rows = t.shape[0] ?? 1;
      const cols = t.shape.slice(1).reduce((a, b) => a * b, 1);
      const elem = dtypeBits(t.dtype) / 8;
      if (!Number.isInteger(elem)) throw new LoraspecError("E_NOT_SUPPORTED", `cannot write ${t.dtype} tensors`);
      const out = new Uint8Array(rows * cols * elem);
      for (const part of t.op.parts) await placePart(out, cols, elem, t, part, inputs, bytesOf);
      return out;
    },
  }));
}

async function placePart(
  out: Uint8Array,
  outCols: number,
  elem: number,
  t: PlannedTensor,
  part: PlacePart,
  inputs: SafetensorsFile[],
  bytesOf: (input: number, key: string) => Promise<Uint8Array>,
): Promise<void> {
  const src = inputs[part.src.input]!.tensor(part.src.key);
  const srcRowsTotal = src.shape[0] ?? 1;
  const srcCols = src.shape.slice(1).reduce((a, b) => a * b, 1);
  const [r0, r1] = part.srcRows ?? [0, srcRowsTotal];
  const [c0, c1] = part.srcCols ?? [0, srcCols];
  const h = r1 - r0, w = c1 - c0;
  if (part.row + h > out.length / (outCols * elem) || part.col + w > outCols || r1 > srcRowsTotal || c1 > srcCols) {
    throw new LoraspecError("E_LORA_SHAPE_MISMATCH", `tensor "${part.src.key}" does not fit into "${t.name}" ${JSON.stringify(t.shape)}`);
  }
  const raw = await bytesOf(part.src.input, part.src.key);
  const sameBytes = part.factor === 1 && src.dtype === t.dtype && !part.swapHalves;
  if (sameBytes && w === srcCols && w === outCols) {
    out.set(raw.subarray(r0 * srcCols * elem, r1 * srcCols * elem), part.row * outCols * elem);
    return;
  }
  // General path: f32 block, scaled, optionally half-swapped, encoded once, copied row by row.
  const values = decodeToF32(src.dtype, raw);
  const block = new Float32Array(h * w);
  const half = h / 2;
  const f = Math.fround(part.factor);
  for (let i = 0; i < h; i++) {
    const si = part.swapHalves ? (i < half ? i + half : i - half) : i;
    const base = (r0 + si) * srcCols + c0;
    if (f === 1) block.set(values.subarray(base, base + w), i * w);
    else for (let j = 0; j < w; j++) block[i * w + j] = Math.fround(values[base + j]! * f);
  }
  const enc = encodeFromF32(t.dtype, block);
  if (w === outCols) {
    out.set(enc, part.row * outCols * elem);
    return;
  }
  for (let i = 0; i < h; i++) out.set(enc.subarray(i * w * elem, (i + 1) * w * elem), ((part.row + i) * outCols + part.col) * elem);
}
