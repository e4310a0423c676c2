import { LoraspecError } from "../errors.js";
import type { Dtype } from "./dtype.js";
import type { PlacePart, PlannedTensor, SrcRef } from "./plan.js";

/**
 * Scaled factors that stay in their dtype's range. A plan bakes scales into stored factors (convert's
 * alpha / rank, a cat merge's weight x scale, `merge X:S`, LoKr/LoHa's scale in their first factor);
 * a factor of an F16 or F8 LoRA times that scale can leave the dtype (F16 overflows to Inf past 65504,
 * F8_E4M3 saturates at 448, small values lose their bits below the smallest normal). The delta is a
 * product of the factors of one module (`PlacePart.group`), so the scale may be split among them:
 * - The planned split is kept when every scaled factor fits (the common case: byte-identical output).
 * - Else the scale |F| = s x 2^k (s in [1, 2)) is redistributed: each factor of the group gets a power
 *   of two that keeps its values in [smallest normal, largest finite] (exact: only exponents move;
 *   a factor may go up from subnormals), and s (a rounding, as before, when not 1) goes to one of them.
 * - When no split fits (the factors' values span more than the dtype can hold), the output tensor of
 *   one factor is written as F32 (exact for every F16/BF16/F8 value times the scale), then another.
 * - When even that does not fit, E_NOT_SUPPORTED naming the tensor. Nothing is ever clamped.
 * Value ranges come from the caller (the engine scans the factors); F32/BF16/F64 factors, whose range
 * is f32's, are assumed to fit without a scan and are checked as they are written. Pure.
 */

export interface ValueRange {
  /** Largest |x|. */
  maxAbs: number;
  /** Smallest non-zero |x| (Infinity when every value is 0). */
  minAbs: number;
}

/** Largest finite and smallest normal magnitude a computed value may have in each written dtype (computed in f32). */
const F32_LIMITS = { max: 3.4028234663852886e38, minNormal: 2 ** -126 };
export const DTYPE_LIMITS: Readonly<Partial<Record<Dtype, { max: number; minNormal: number }>>> = {
  F16: { max: 65504, minNormal: 2 ** -14 },
  F8_E4M3: { max: 448, minNormal: 2 ** -6 },
  F8_E5M2: { max: 57344, minNormal: 2 ** -14 },
  BF16: { max: 3.3895313892515355e38, minNormal: 2 ** -126 },
  F32: F32_LIMITS,
  F64: F32_LIMITS,
};

/** Dtypes whose range is narrow enough that a scaled factor is checked against its values before writing. */
export function needsRangeCheck(dtype: Dtype): boolean {
  return dtype === "F16" || dtype === "F8_E4M3" || dtype === "F8_E5M2";
}

interface Slot {
  t: PlannedTensor;
  part: PlacePart;
}

const log2Floor = (x: number) => {
  let k = Math.floor(Math.log2(x));
  if (2 ** k > x) k--;
  else if (2 ** (k + 1) <= x) k++;
  return k;
};

/**
 * Exponents e such that range x 2^e x s stays at most the dtype's largest finite value and, strict, keeps
 * every value normal (s = 1 lets subnormals shift up, exact); loose, keeps the largest value normal: the
 * values that go subnormal then lose at most half the smallest subnormal, no more than rounding the
 * largest value once costs (2^-(m+1) x max, m mantissa bits), the "rounded once" of a non-power-of-two scale.
 */
function window(r: ValueRange, dtype: Dtype, s: number, strict: boolean): [number, number] {
  const lim = DTYPE_LIMITS[dtype] ?? F32_LIMITS;
  if (r.maxAbs === 0) return [-Infinity, Infinity];
  const top = r.maxAbs * s, bottom = (strict ? r.minAbs : r.maxAbs) * s;
  let hi = log2Floor(lim.max / top);
  while (top * 2 ** hi > lim.max) hi--;
  while (top * 2 ** (hi + 1) <= lim.max) hi++;
  let lo = Math.ceil(Math.log2(lim.minNormal / bottom));
  while (bottom * 2 ** (lo - 1) >= lim.minNormal) lo--;
  while (bottom * 2 ** lo < lim.minNormal) lo++;
  return [strict && s === 1 ? Math.min(0, lo) : lo, hi];
}

/** Whether a factor fits: strict, every value stays normal or exact (a power of two >= 1 shifts subnormals up exactly); loose, the largest value stays normal. Nothing overflows either way. */
function fits(r: ValueRange | undefined, dtype: Dtype, factor: number, strict: boolean): boolean {
  if (!r || r.maxAbs === 0) return true;
  const lim = DTYPE_LIMITS[dtype] ?? F32_LIMITS;
  const f = Math.abs(factor);
  const top = r.maxAbs * f;
  if (top > lim.max || top < lim.minNormal) return false;
  if (!strict || r.minAbs * f >= lim.minNormal) return true;
  return 2 ** log2Floor(f) === f && f >= 1;
}

/** Exponents, one per slot, in their windows and summing to k (the remainder slot's window already holds s); undefined when none. */
function distribute(windows: Array<[number, number]>, k: number): number[] | undefined {
  const lo = windows.map((w) => Math.max(w[0], -2200));
  const hi = windows.map((w) => Math.min(w[1], 2200));
  if (lo.some((x, i) => x > hi[i]!)) return undefined;
  const sumLo = lo.reduce((a, b) => a + b, 0), sumHi = hi.reduce((a, b) => a + b, 0);
  if (k < sumLo || k > sumHi) return undefined;
  // Start at each window's middle clamp of an even share, then move units toward the bounds.
  const e = lo.map((l, i) => Math.min(hi[i]!, Math.max(l, Math.round(k / windows.length))));
  let rest = k - e.reduce((a, b) => a + b, 0);
  for (let i = 0; rest !== 0 && i < e.length; i++) {
    const room = rest > 0 ? hi[i]! - e[i]! : lo[i]! - e[i]!;
    const step = rest > 0 ? Math.min(rest, room) : Math.max(rest, room);
    e[i]! += step;
    rest -= step;
  }
  return rest === 0 ? e : undefined;
}

/** One group's factors again, in place: fitted, widened to F32, or refused. */
function refit(slots: Slot[], range: (src: SrcRef) => ValueRange, widened: Set<PlannedTensor>, file?: string): void {
  const total = slots.reduce((p, x) => p * x.part.factor, 1);
  const mag = Math.abs(total);
  const k = log2Floor(mag);
  const s = mag / 2 ** k;
  const ranges = slots.map((x) => range(x.part.src));
  for (let round = 0; round <= slots.length; round++) {
    const order = slots.map((_, j) => j).sort((a, b) => Number(widened.has(slots[b]!.t)) - Number(widened.has(slots[a]!.t)));
    // Every value normal if any split allows it (exact for a power of two). Else, for F16 (not F8, whose
    // rounding is 6-12%), the planned split when its largest values stay normal (the common case: both
    // factors hold a few subnormals that a scale < 1 rounds, as rounding the largest value once would), else any such split.
    const loose = slots.every((x) => !x.t.dtype.startsWith("F8_"));
    for (const strict of loose ? [true, false] : [true]) {
      if (!strict && slots.every((x, i) => fits(ranges[i], x.t.dtype, x.part.factor, false))) return;
      for (const j of s === 1 ? [-1] : order) {
        const windows = slots.map((x, i) => window(ranges[i]!, x.t.dtype, i === j ? s : 1, strict));
        const e = distribute(windows, k);
        if (!e) continue;
        slots.forEach((x, i) => (x.part.factor = 2 ** e[i]! * (i === j ? s : 1) * (i === 0 && total < 0 ? -1 : 1)));
        return;
      }
    }
    const narrow = slots.find((x) => x.t.dtype !== "F32" && x.t.dtype !== "F64");
    if (!narrow) break;
    narrow.t.dtype = "F32";
    widened.add(narrow.t);
  }
  const first = slots[0]!;
  throw new LoraspecError("E_NOT_SUPPORTED", `scaling tensor "${first.part.src.key}" by ${total} leaves the range of every dtype loraspec writes (its values and the scale span more than float32 holds)`, {
    file,
    field: `tensor "${first.part.src.key}"`,
    hint: "The file's alpha or values are far outside what a LoRA holds; check it with `loraspec inspect`.",
    details: { tensor: first.part.src.key, scale: total, ranges },
  });
}

/**
 * The plan with every scaled factor in its dtype's range (a copy; the input plan is not changed) and
 * the names of the tensors widened to F32. `range` gives a source tensor's value range (the engine
 * scans it; called only for F16/F8 factors and for the factors of a group that must be re-split).
 */
export function fitScales(params: { plan: readonly PlannedTensor[]; range: (src: SrcRef) => ValueRange; file?: string }): { plan: PlannedTensor[]; widened: string[] } {
  const plan = params.plan.map((t) => (t.op.op === "place" ? { ...t, op: { op: "place" as const, parts: t.op.parts.map((p) => ({ ...p })) } } : { ...t }));
  const groups = new Map<string, Slot[]>();
  plan.forEach((t, ti) => {
    if (t.op.op !== "place") return;
    t.op.parts.forEach((part, pi) => {
      if (part.factor === 1 && part.group === undefined) return;
      const id = part.group ?? `#${ti}:${pi}`;
      groups.set(id, [...(groups.get(id) ?? []), { t, part }]);
    });
  });
  const widened = new Set<PlannedTensor>();
  for (const slots of groups.values()) {
    if (slots.every((x) => x.part.factor === 1) || slots.some((x) => x.part.factor === 0)) continue;
    const ok = slots.every((x) => x.part.factor === 1 || !needsRangeCheck(x.t.dtype) || fits(params.range(x.part.src), x.t.dtype, x.part.factor, true));
    if (!ok) refit(slots, params.range, widened, params.file);
  }
  return { plan, widened: [...widened].map((t) => t.name) };
}
