import { LoraspecError } from "@loraspec/core/errors.js";
import { decodeToF32, dtypeBits, encodeFromF32, scaleBf16 } from "@loraspec/core/lora/dtype.js";
import type { PlacePart, PlannedTensor } from "@loraspec/core/lora/plan.js";
import { DTYPE_LIMITS } from "@loraspec/core/lora/plan-fit.js";
import { fitPlan } from "./value-range.js";
import type { SafetensorsFile } from "./safetensors-file.js";
import type { OutputTensor } from "./write-safetensors.js";

// Scaled blocks needed more than once (diffusers copies one A to q, k and v) are kept until their
// last use, up to this many bytes; past it they are recomputed.
const MEMO_LIMIT = 64 << 20;
// Rows at least this long are copied with one memcpy each; shorter ones with a typed-array loop.
const ROW_MEMCPY_BYTES = 512;

/** The state one plan execution shares across its tensors: a reusable read buffer and the memo. */
interface Context {
  inputs: SafetensorsFile[];
  scratch: Uint8Array;
  /** Remaining uses of each multi-use scaled block, from the whole plan. */
  uses: Map<string, number>;
  memo: Map<string, Uint8Array>;
  memoBytes: number;
  /** Memo buffers whose block has had its last use, by byte length, for reuse. */
  spare: Map<number, Uint8Array[]>;
}

/**
 * Turns planned tensors into writer inputs that fill their bytes straight into the writer's
 * output buffer, one tensor at a time. Whole-row blocks with factor 1 and the same dtype are read
 * from the file directly into place (no decode, no intermediate buffer); column blocks are strided
 * copies; bf16 blocks with a factor are scaled by a tight bit-level loop; anything else is computed
 * in f32 and rounded once (nearest even) to the output dtype.
 */
export function executePlan(params: { plan: PlannedTensor[]; inputs: SafetensorsFile[]; fitted?: boolean }): OutputTensor[] {
  // Scaled factors kept in their dtype's range (value-range.ts fitPlan); a caller that fitted the plan itself passes fitted.
  const plan = params.fitted ? params.plan : fitPlan({ plan: params.plan, inputs: params.inputs }).plan;
  const ctx: Context = { inputs: params.inputs, scratch: new Uint8Array(0), uses: new Map(), memo: new Map(), memoBytes: 0, spare: new Map() };
  for (const t of plan) {
    if (t.op.op !== "place") continue;
    for (const part of t.op.parts) {
      const key = memoKeyOf(part, t);
      if (key) ctx.uses.set(key, (ctx.uses.get(key) ?? 0) + 1);
    }
  }
  for (const [key, n] of ctx.uses) if (n < 2) ctx.uses.delete(key);
  return plan.map((t) => {
    const zeroFirst = needsZeroing(t, params.inputs);
    return { name: t.name, dtype: t.dtype, shape: t.shape, data: { fill: (dest: Uint8Array) => fillTensor(dest, t, ctx, zeroFirst) } };
  });
}

/** Memo key of a part that goes through scaling or decoding (undefined for byte copies). */
function memoKeyOf(part: PlacePart, t: PlannedTensor): string | undefined {
  if (part.factor === 1 && !part.swapHalves) return undefined;
  return JSON.stringify([part.src.input, part.src.key, part.factor, part.srcRows ?? null, part.srcCols ?? null, part.swapHalves ?? false, t.dtype]);
}

function fillTensor(dest: Uint8Array, t: PlannedTensor, ctx: Context, zeroFirst: boolean): void {
  if (t.op.op === "scalar") {
    dest.set(encodeFromF32(t.dtype, new Float32Array([t.op.value])));
    return;
  }
  const cols = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const elem = dtypeBits(t.dtype) / 8;
  if (!Number.isInteger(elem)) throw new LoraspecError("E_NOT_SUPPORTED", `cannot write ${t.dtype} tensors`);
  if (zeroFirst) dest.fill(0);
  for (const part of t.op.parts) placePart(dest, cols, elem, t, part, ctx);
}

/**
 * Whether the parts leave some of the output uncovered (those elements are zeros) or overlap, so the reused
 * output buffer must be cleared first. Plans today always tile their tensors with disjoint blocks.
 */
function needsZeroing(t: PlannedTensor, inputs: SafetensorsFile[]): boolean {
  if (t.op.op !== "place") return false;
  const rows = t.shape[0] ?? 1;
  const cols = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const boxes = t.op.parts.map((p) => {
    const src = inputs[p.src.input]!.tensor(p.src.key);
    const [r0, r1] = p.srcRows ?? [0, src.shape[0] ?? 1];
    const [c0, c1] = p.srcCols ?? [0, src.shape.slice(1).reduce((a, b) => a * b, 1)];
    return { top: p.row, bottom: p.row + r1 - r0, left: p.col, right: p.col + c1 - c0 };
  });
  let area = 0;
  for (let i = 0; i < boxes.length; i++) {
    const a = boxes[i]!;
    area += (a.bottom - a.top) * (a.right - a.left);
    for (let j = 0; j < i; j++) {
      const b = boxes[j]!;
      if (a.top < b.bottom && b.top < a.bottom && a.left < b.right && b.left < a.right) return true;
    }
  }
  return area !== rows * cols;
}

/** Reads rows [r0, r1) of a source tensor into the reusable scratch buffer. */
function readRows(ctx: Context, input: number, key: string, r0: number, r1: number, rowBytes: number): Uint8Array {
  const src = ctx.inputs[input]!.tensor(key);
  const n = (r1 - r0) * rowBytes;
  if (ctx.scratch.length < n) ctx.scratch = new Uint8Array(Math.max(n, ctx.scratch.length * 2));
  const out = ctx.scratch.subarray(0, n);
  ctx.inputs[input]!.readIntoSync(src.begin + r0 * rowBytes, out);
  return out;
}

function placePart(dest: Uint8Array, outCols: number, elem: number, t: PlannedTensor, part: PlacePart, ctx: Context): void {
  const file = ctx.inputs[part.src.input]!;
  const src = file.tensor(part.src.key);
  const srcRowsTotal = src.shape[0] ?? 1;
  const srcCols = src.shape.slice(1).reduce((a, b) => a * b, 1);
  const [r0, r1] = part.srcRows ?? [0, srcRowsTotal];
  const [c0, c1] = part.srcCols ?? [0, srcCols];
  const h = r1 - r0, w = c1 - c0;
  if (part.row + h > dest.length / (outCols * elem) || part.col + w > outCols || r1 > srcRowsTotal || c1 > srcCols) {
    throw new LoraspecError("E_LORA_SHAPE_MISMATCH", `tensor "${part.src.key}" does not fit into "${t.name}" ${JSON.stringify(t.shape)}`);
  }
  const srcElem = dtypeBits(src.dtype) / 8;
  const sameBytes = part.factor === 1 && src.dtype === t.dtype && !part.swapHalves;
  if (sameBytes && w === srcCols && w === outCols) {
    // Whole rows: read from the file straight into place.
    file.readIntoSync(src.begin + r0 * srcCols * elem, dest.subarray(part.row * outCols * elem, (part.row + h) * outCols * elem));
    return;
  }
  if (sameBytes) {
    // A block of columns (e.g. one input's B inside a cat-merged B): strided copy, no decode.
    const raw = readRows(ctx, part.src.input, part.src.key, r0, r1, srcCols * elem);
    copyBlock(raw, srcCols * elem, c0 * elem, dest, outCols * elem, (part.row * outCols + part.col) * elem, h, w * elem);
    return;
  }
  const key = memoKeyOf(part, t)!;
  const destAt = (part.row * outCols + part.col) * elem;
  let enc = ctx.memo.get(key);
  if (!enc) {
    const raw = readRows(ctx, part.src.input, part.src.key, r0, r1, srcCols * srcElem);
    const bytes = h * w * elem;
    const keep = ctx.uses.has(key) && ctx.memoBytes + bytes <= MEMO_LIMIT;
    if (src.dtype === "BF16" && t.dtype === "BF16" && !part.swapHalves && w === srcCols) {
      // The common case (a scale baked into bf16 weights): a bit-level loop, no f32 array.
      if (!keep && w === outCols) {
        if (scaleBf16(u16(raw), u16(dest.subarray(destAt, destAt + bytes)), part.factor) > 0) throw outOfRange(t, part, file.path);
        return;
      }
      enc = keep ? spareOrNew(ctx, bytes) : new Uint8Array(bytes);
      if (scaleBf16(u16(raw), u16(enc), part.factor) > 0) throw outOfRange(t, part, file.path);
    } else {
      enc = encodeBlock(raw, src.dtype, t.dtype, srcCols, h, c0, w, part);
      if (!enc) throw outOfRange(t, part, file.path);
    }
    if (keep) {
      ctx.memo.set(key, enc);
      ctx.memoBytes += enc.length;
    }
  }
  copyBlock(enc, w * elem, 0, dest, outCols * elem, destAt, h, w * elem);
  const remaining = ctx.uses.get(key);
  if (remaining !== undefined && ctx.memo.get(key) === enc) {
    if (remaining > 1) {
      ctx.uses.set(key, remaining - 1);
    } else {
      // Last use: its buffer serves the next block of the same size.
      ctx.uses.delete(key);
      ctx.memo.delete(key);
      ctx.memoBytes -= enc.length;
      const list = ctx.spare.get(enc.length) ?? [];
      list.push(enc);
      ctx.spare.set(enc.length, list);
    }
  }
}

function spareOrNew(ctx: Context, bytes: number): Uint8Array {
  return ctx.spare.get(bytes)?.pop() ?? new Uint8Array(bytes);
}

function u16(bytes: Uint8Array): Uint16Array {
  return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
}

/**
 * Copies h rows of rowBytes bytes from src (row stride srcStride, starting at srcAt) to dest (row
 * stride destStride, starting at destAt). Contiguous blocks are one memcpy; short rows use the
 * widest aligned typed-array loop (a subarray per row costs more than the copy).
 */
function copyBlock(src: Uint8Array, srcStride: number, srcAt: number, dest: Uint8Array, destStride: number, destAt: number, h: number, rowBytes: number): void {
  if (rowBytes === srcStride && rowBytes === destStride) {
    dest.set(src.subarray(srcAt, srcAt + h * rowBytes), destAt);
    return;
  }
  if (rowBytes < ROW_MEMCPY_BYTES) {
    const all = srcStride | srcAt | destStride | destAt | rowBytes | src.byteOffset | dest.byteOffset;
    const unit = all % 4 === 0 ? 4 : all % 2 === 0 ? 2 : 1;
    const View = unit === 4 ? Uint32Array : unit === 2 ? Uint16Array : Uint8Array;
    const s = new View(src.buffer as ArrayBuffer, src.byteOffset, Math.floor(src.byteLength / unit));
    const d = new View(dest.buffer as ArrayBuffer, dest.byteOffset, Math.floor(dest.byteLength / unit));
    const n = rowBytes / unit, ss = srcStride / unit, ds = destStride / unit;
    let from = srcAt / unit, to = destAt / unit;
    for (let i = 0; i < h; i++, from += ss, to += ds) for (let j = 0; j < n; j++) d[to + j] = s[from + j]!;
    return;
  }
  for (let i = 0; i < h; i++) dest.set(src.subarray(srcAt + i * srcStride, srcAt + i * srcStride + rowBytes), destAt + i * destStride);
}

/**
 * General path: the block in f32, scaled, optionally half-swapped, encoded once. `raw` holds the block's
 * rows. Undefined when a finite value would leave the output dtype's range (overflow, saturation) or the
 * whole block would flush to zero: plan-fit.ts keeps that from happening; this is the last check.
 */
function encodeBlock(raw: Uint8Array, srcDtype: PlannedTensor["dtype"], dtype: PlannedTensor["dtype"], srcCols: number, h: number, c0: number, w: number, part: PlacePart): Uint8Array | undefined {
  const values = decodeToF32(srcDtype, raw);
  const block = new Float32Array(h * w);
  const half = h / 2;
  const f = Math.fround(part.factor);
  const { max } = DTYPE_LIMITS[dtype] ?? { max: Infinity };
  let bad = 0, nonZeroIn = 0, nonZeroOut = 0;
  for (let i = 0; i < h; i++) {
    const si = part.swapHalves ? (i < half ? i + half : i - half) : i;
    const base = si * srcCols + c0;
    for (let j = 0; j < w; j++) {
      const x = values[base + j]!;
      const v = f === 1 ? x : Math.fround(x * f);
      block[i * w + j] = v;
      if (Math.abs(v) > max) bad++;
      if (x !== 0) nonZeroIn++;
      if (v !== 0) nonZeroOut++;
    }
  }
  const enc = encodeFromF32(dtype, block);
  // Every value flushed to zero (subnormals of the output dtype rounding away) is no delta at all.
  if (nonZeroIn > 0 && nonZeroOut > 0 && decodeToF32(dtype, enc).every((y) => y === 0)) bad++;
  return bad > 0 || (nonZeroIn > 0 && nonZeroOut === 0) ? undefined : enc;
}

function outOfRange(t: PlannedTensor, part: PlacePart, file: string): LoraspecError {
  return new LoraspecError("E_NOT_SUPPORTED", `tensor "${part.src.key}" times ${part.factor} leaves the range of ${t.dtype} (written as "${t.name}"): its values would overflow or lose their bits`, {
    file,
    field: `tensor "${part.src.key}"`,
    hint: "Nothing was written. The file's alpha or values are far outside what a LoRA holds; check it with `loraspec inspect`.",
    details: { tensor: part.src.key, output: t.name, dtype: t.dtype, factor: part.factor },
  });
}
