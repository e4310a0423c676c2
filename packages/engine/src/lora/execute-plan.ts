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
  // Scaled blocks already encoded for this plan (one file set), keyed by source, range and factor.
  const blockMemo = new Map<string, Uint8Array>();
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
      const only = t.op.parts.length === 1 ? t.op.parts[0]! : undefined;
      if (only && only.factor === 1 && !only.swapHalves && !only.srcCols && only.row === 0 && only.col === 0) {
        // Copy-through of whole rows of one source: hand the source bytes to the writer (no copy).
        const src = inputs[only.src.input]!.tensor(only.src.key);
        const srcCols = src.shape.slice(1).reduce((a, b) => a * b, 1);
        const [r0, r1] = only.srcRows ?? [0, src.shape[0] ?? 1];
        if (src.dtype === t.dtype && srcCols === cols && r1 - r0 === rows) {
          const raw = await bytesOf(only.src.input, only.src.key);
          return raw.subarray(r0 * cols * elem, r1 * cols * elem);
        }
      }
      const out = new Uint8Array(rows * cols * elem);
      for (const part of t.op.parts) await placePart(out, cols, elem, t, part, inputs, bytesOf, blockMemo);
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
  blockMemo: Map<string, Uint8Array>,
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
  if (sameBytes) {
    // Strided copy (a block of columns, e.g. one input's B inside a cat-merged B): no decode.
    // Short rows go through an element loop on aligned views (subarray per row costs more).
    if ((elem === 2 || elem === 4) && w <= 128 && raw.byteOffset % elem === 0 && out.byteOffset % elem === 0) {
      const View = elem === 2 ? Uint16Array : Uint32Array;
      const s16 = new View(raw.buffer as ArrayBuffer, raw.byteOffset, raw.byteLength / elem);
      const d16 = new View(out.buffer as ArrayBuffer, out.byteOffset, out.byteLength / elem);
      for (let i = 0; i < h; i++) {
        let from = (r0 + i) * srcCols + c0;
        let to = (part.row + i) * outCols + part.col;
        for (let j = 0; j < w; j++) d16[to++] = s16[from++]!;
      }
      return;
    }
    const rowBytes = w * elem;
    for (let i = 0; i < h; i++) {
      const from = ((r0 + i) * srcCols + c0) * elem;
      out.set(raw.subarray(from, from + rowBytes), ((part.row + i) * outCols + part.col) * elem);
    }
    return;
  }
  // General path: f32 block, scaled, optionally half-swapped, encoded once, copied row by row.
  // The same scaled block is often needed several times (diffusers copies one A to q, k and v).
  const memoKey = JSON.stringify([part.src, part.factor, r0, r1, c0, c1, part.swapHalves ?? false, t.dtype]);
  const memo = blockMemo.get(memoKey);
  const enc = memo ?? encodeBlock(raw, src.dtype, t.dtype, srcCols, r0, h, c0, w, part);
  if (!memo) {
    blockMemo.set(memoKey, enc);
    if (blockMemo.size > 4) blockMemo.delete(blockMemo.keys().next().value!);
  }
  if (w === outCols) {
    out.set(enc, part.row * outCols * elem);
    return;
  }
  for (let i = 0; i < h; i++) out.set(enc.subarray(i * w * elem, (i + 1) * w * elem), ((part.row + i) * outCols + part.col) * elem);
}

function encodeBlock(raw: Uint8Array, srcDtype: PlannedTensor["dtype"], dtype: PlannedTensor["dtype"], srcCols: number, r0: number, h: number, c0: number, w: number, part: PlacePart): Uint8Array {
  const values = decodeToF32(srcDtype, raw);
  const block = new Float32Array(h * w);
  const half = h / 2;
  const f = Math.fround(part.factor);
  for (let i = 0; i < h; i++) {
    const si = part.swapHalves ? (i < half ? i + half : i - half) : i;
    const base = (r0 + si) * srcCols + c0;
    if (f === 1) block.set(values.subarray(base, base + w), i * w);
    else for (let j = 0; j < w; j++) block[i * w + j] = Math.fround(values[base + j]! * f);
  }
  return encodeFromF32(dtype, block);
}
