import { decodeToF32 } from "@loraspec/core/lora/dtype.js";
import { scaleOf, type ParsedLora, type PlacedModule } from "@loraspec/core/lora/parse-lora.js";
import type { SafetensorsFile } from "./safetensors-file.js";

/** One file of a merge as the measure reads it: the open file, its parse, and its weight (the output's is -1). */
export interface DeltaSide {
  file: SafetensorsFile;
  parsed: ParsedLora;
  weight: number;
}

export interface DeltaError {
  /** ||merged - exact||_F / ||exact||_F over the modules measured (exact = sum_i w_i (alpha_i / r_i) up_i down_i). */
  relative: number;
  /** Modules measured, and of how many the merge touches. */
  modules: number;
  of: number;
  /** The module measured furthest off, with its own relative error. */
  worst?: { module: string; relative: number };
}

/** One low-rank term c * P(up) @ down of a module's delta, in native rows (P places up's rows). */
interface Term {
  c: number;
  /** up transposed, [rank][rows]: each column of up contiguous for the Gram products. */
  upT: Float64Array;
  down: Float64Array;
  rank: number;
  row0: number;
  rows: number;
  cols: number;
}

/**
 * How far a merged LoRA's delta is from the exact weighted sum of its inputs' deltas, per module in the base's own
 * (native) coordinates, whatever each file's key format: fused parts placed by rows, diffusers' swapped halves put
 * back. Computed in the low-rank space, never forming a delta: for X = sum_q c_q U_q D_q,
 * ||X||_F^2 = sum_{q,q'} c_q c_q' <U_q^T U_q', D_q D_q'^T> (the Gram matrices over the rows the two terms share),
 * in float64. Cheap (rank^2 x (rows + cols) per pair of terms); `sample` caps the modules measured, spread evenly
 * over the sorted names.
 */
export async function measureDeltaError(params: { inputs: DeltaSide[]; output: Omit<DeltaSide, "weight">; sample: number }): Promise<DeltaError> {
  const sides: DeltaSide[] = [...params.inputs, { ...params.output, weight: -1 }];
  const byModule = sides.map((s) => groupByModule(s.parsed.placed));
  // A module with keys beyond down/up/alpha (a LoCon lora_mid, DoRA's magnitude) is not up @ down: not measured.
  const other = new Set(sides.flatMap((s) => s.parsed.placed.filter((m) => m.extra.length > 0).map((m) => m.placement.module.native)));
  const names = [...new Set(byModule.flatMap((m) => [...m.keys()]))].filter((n) => !other.has(n)).sort();
  const picked = names.length <= params.sample ? names : Array.from({ length: params.sample }, (_, i) => names[Math.floor((i * names.length) / params.sample)]!);
  let err2 = 0, ref2 = 0;
  let worst: DeltaError["worst"];
  for (const name of picked) {
    const exact: Term[] = [];
    const all: Term[] = [];
    for (const [n, side] of sides.entries()) {
      for (const m of byModule[n]!.get(name) ?? []) {
        const term = await termOf(side.file, m, side.weight);
        if (n < sides.length - 1) exact.push(term);
        all.push(term);
      }
    }
    const e2 = Math.max(0, normSquared(all)), r2 = Math.max(0, normSquared(exact));
    err2 += e2;
    ref2 += r2;
    const rel = r2 > 0 ? Math.sqrt(e2 / r2) : e2 > 0 ? Infinity : 0;
    if (!worst || rel > worst.relative) worst = { module: name, relative: rel };
  }
  return { relative: ref2 > 0 ? Math.sqrt(err2 / ref2) : err2 > 0 ? Infinity : 0, modules: picked.length, of: names.length, worst };
}

function groupByModule(placed: PlacedModule[]): Map<string, PlacedModule[]> {
  const out = new Map<string, PlacedModule[]>();
  for (const m of placed) {
    if (!m.keys.down || !m.keys.up) continue;
    const name = m.placement.module.native;
    out.set(name, [...(out.get(name) ?? []), m]);
  }
  return out;
}

async function termOf(file: SafetensorsFile, m: PlacedModule, weight: number): Promise<Term> {
  const { module, part, rows: span, naming } = m.placement;
  const down = Float64Array.from(decodeToF32(file.tensor(m.keys.down!).dtype, await file.readBytes(m.keys.down!)));
  let up = Float64Array.from(decodeToF32(file.tensor(m.keys.up!).dtype, await file.readBytes(m.keys.up!)));
  const rank = m.rank;
  const rows = up.length / Math.max(1, rank);
  const cols = down.length / Math.max(1, rank);
  const row0 = part !== undefined ? module.parts[part]!.start : (span?.[0] ?? 0);
  // diffusers stores the final modulation's (scale, shift) where the native weight has (shift, scale): native order.
  if (module.swapHalves && naming === "diffusers" && part === undefined && rows % 2 === 0) {
    const half = (rows / 2) * rank;
    const swapped = new Float64Array(up.length);
    swapped.set(up.subarray(half), 0);
    swapped.set(up.subarray(0, half), half);
    up = swapped;
  }
  const upT = new Float64Array(up.length);
  for (let row = 0; row < rows; row++) for (let i = 0; i < rank; i++) upT[i * rows + row] = up[row * rank + i]!;
  return { c: weight * scaleOf(m), upT, down, rank, row0, rows, cols };
}

/** ||sum_q c_q P(U_q) D_q||_F^2 from the pairwise Gram products (terms on disjoint rows add nothing to each other). */
function normSquared(terms: Term[]): number {
  let total = 0;
  for (let a = 0; a < terms.length; a++) {
    for (let b = a; b < terms.length; b++) {
      const p = terms[a]!, q = terms[b]!;
      if (p.cols !== q.cols) continue;
      const lo = Math.max(p.row0, q.row0), hi = Math.min(p.row0 + p.rows, q.row0 + q.rows);
      if (hi <= lo) continue;
      // G_U[i][j] = column i of U_p . column j of U_q over the shared rows; G_D[i][j] = row i of D_p . row j of D_q.
      // For a term with itself both are symmetric: j >= i, off-diagonal counted twice.
      const n = hi - lo, pu = lo - p.row0, qu = lo - q.row0;
      let sum = 0;
      for (let i = 0; i < p.rank; i++) {
        for (let j = a === b ? i : 0; j < q.rank; j++) {
          const gu = dot(p.upT, i * p.rows + pu, q.upT, j * q.rows + qu, n);
          if (gu === 0) continue;
          const gd = dot(p.down, i * p.cols, q.down, j * q.cols, p.cols);
          sum += (a === b && j !== i ? 2 : 1) * gu * gd;
        }
      }
      total += (a === b ? 1 : 2) * p.c * q.c * sum;
    }
  }
  return total;
}

function dot(x: Float64Array, xo: number, y: Float64Array, yo: number, n: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let k = 0;
  for (; k + 3 < n; k += 4) {
    s0 += x[xo + k]! * y[yo + k]!;
    s1 += x[xo + k + 1]! * y[yo + k + 1]!;
    s2 += x[xo + k + 2]! * y[yo + k + 2]!;
    s3 += x[xo + k + 3]! * y[yo + k + 3]!;
  }
  for (; k < n; k++) s0 += x[xo + k]! * y[yo + k]!;
  return s0 + s1 + s2 + s3;
}
