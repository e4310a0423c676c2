import { decodeToF32 } from "@loraspec/core/lora/dtype.js";
import { groupKeys, parseLora, scaleOf } from "@loraspec/core/lora/parse-lora.js";
import { readAlphas } from "@loraspec/engine/lora/inspect-lora.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";

/**
 * Every module's dense delta in float64, by native module name, from the bytes a file holds (read as
 * loraspec reads it: plain LoRA with alpha / rank in any key format, fused parts placed by rows;
 * LoHa and LoKr in any naming with their alpha / rank), plus the count of non-finite values.
 * For small test files (a few 640 x 640 modules).
 */
export async function denseDeltas(path: string): Promise<{ deltas: Map<string, Float64Array>; nonFinite: number; dtypes: Record<string, string> }> {
  const f = await openSafetensors({ path });
  try {
    const values = new Map<string, { shape: number[]; v: Float64Array }>();
    let nonFinite = 0;
    const dtypes: Record<string, string> = {};
    for (const t of f.tensors) {
      const v = Float64Array.from(decodeToF32(t.dtype, await f.readBytes(t.name)));
      nonFinite += v.filter((x) => !Number.isFinite(x)).length;
      values.set(t.name, { shape: t.shape, v });
      dtypes[t.name] = t.dtype;
    }
    const parsed = parseLora({ tensors: f.tensors, metadata: f.metadata, alphas: await readAlphas(f) });
    const deltas = new Map<string, Float64Array>();
    for (const m of parsed.placed) {
      const { module, part } = m.placement;
      const cols = module.shape.slice(1).reduce((a, b) => a * b, 1);
      const out = deltas.get(module.native) ?? new Float64Array(module.shape[0]! * cols);
      const row0 = part !== undefined ? module.parts[part]!.start : (m.placement.rows?.[0] ?? 0);
      const down = values.get(m.keys.down!)!.v, up = values.get(m.keys.up!)!.v;
      const rows = up.length / m.rank, s = scaleOf(m);
      for (let i = 0; i < rows; i++) for (let r = 0; r < m.rank; r++) {
        const u = s * up[i * m.rank + r]!;
        if (u !== 0) for (let j = 0; j < cols; j++) out[(row0 + i) * cols + j]! += u * down[r * cols + j]!;
      }
      deltas.set(module.native, out);
    }
    for (const g of groupKeys(f.tensors.map((t) => t.name)).modules) {
      const p = (name: string) => values.get(`${g.base}.${name}`);
      const alpha = g.keys.alpha ? values.get(g.keys.alpha)!.v[0] : undefined;
      if (p("hada_w1_a")) {
        const a = mm(p("hada_w1_a")!, p("hada_w1_b")!), b = mm(p("hada_w2_a")!, p("hada_w2_b")!);
        const s = alpha !== undefined && alpha !== 0 ? alpha / p("hada_w1_b")!.shape[0]! : 1;
        deltas.set(lycorisKey(g.base), a.v.map((x, i) => x * b.v[i]! * s));
      } else if (p("lokr_w1") || p("lokr_w1_a")) {
        const w1 = p("lokr_w1") ? toMat(p("lokr_w1")!) : mm(p("lokr_w1_a")!, p("lokr_w1_b")!);
        const w2 = p("lokr_w2") ? toMat(p("lokr_w2")!) : mm(p("lokr_w2_a")!, p("lokr_w2_b")!);
        const rank = (p("lokr_w2_b") ?? p("lokr_w1_b"))?.shape[0];
        const s = alpha !== undefined && alpha !== 0 && rank ? alpha / rank : 1;
        deltas.set(lycorisKey(g.base), kron(w1, w2, s));
      }
    }
    return { deltas, nonFinite, dtypes };
  } finally {
    await f.close();
  }
}

/** A LoKr/LoHa module's name the same in Kohya and diffusers naming: "lycoris attn1_to_k". */
const lycorisKey = (base: string) => `lycoris ${base.slice(Math.max(0, base.search(/attn\d/))).replace(/\./g, "_")}`;

type Mat = { r: number; c: number; v: Float64Array };
const toMat = (t: { shape: number[]; v: Float64Array }): Mat => ({ r: t.shape[0]!, c: t.v.length / t.shape[0]!, v: t.v });

function mm(at: { shape: number[]; v: Float64Array }, bt: { shape: number[]; v: Float64Array }): Mat {
  const a = toMat(at), b = toMat(bt);
  const v = new Float64Array(a.r * b.c);
  for (let i = 0; i < a.r; i++) for (let k = 0; k < a.c; k++) {
    const x = a.v[i * a.c + k]!;
    if (x !== 0) for (let j = 0; j < b.c; j++) v[i * b.c + j]! += x * b.v[k * b.c + j]!;
  }
  return { r: a.r, c: b.c, v };
}

function kron(w1: Mat, w2: Mat, s: number): Float64Array {
  const cols = w1.c * w2.c;
  const out = new Float64Array(w1.r * w2.r * cols);
  for (let i = 0; i < w1.r; i++) for (let j = 0; j < w1.c; j++) {
    const x = w1.v[i * w1.c + j]! * s;
    for (let k = 0; k < w2.r; k++) for (let l = 0; l < w2.c; l++) out[(i * w2.r + k) * cols + j * w2.c + l] = x * w2.v[k * w2.c + l]!;
  }
  return out;
}

/** max |got - want x s| / max |want x s| (the existing exactness specs' measure). */
export function maxRel(want: Float64Array, got: Float64Array, s = 1): number {
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i]! - s * want[i]!));
    den = Math.max(den, Math.abs(s * want[i]!));
  }
  return den === 0 ? num : num / den;
}
