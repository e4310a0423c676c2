import { decodeToF32 } from "@loraspec/core/lora/dtype.js";
import type { ParsedLora, PlacedModule } from "@loraspec/core/lora/parse-lora.js";
import type { SafetensorsFile } from "./safetensors-file.js";

/**
 * What convert needs to know about fused modules (FLUX's qkv and linear1) beyond their keys,
 * read from the factors' values (lora-formats.md §2b "Exact split / join"):
 * - a fused up matrix that is block-sparse (split_qkv layout): its down may be chunked by rank;
 * - parts of a fused up matrix that are all zero: a split writes no module for them;
 * - split pieces (q/k/v, proj_mlp) that share one down matrix: a join keeps their rank.
 */

// Rows of an up matrix read per step: dense files stop at the first rows.
const SCAN_BYTES = 64 << 10;

/** Calls visit(rowIndex, values of that row) over rows [start, end) of a 2-D tensor until it returns false. */
function eachRow(file: SafetensorsFile, key: string, start: number, end: number, visit: (values: Float32Array, at: number) => boolean): void {
  const t = file.tensor(key);
  const rowBytes = ((t.end - t.begin) / t.shape[0]!) | 0;
  const batch = Math.max(1, Math.floor(SCAN_BYTES / Math.max(1, rowBytes)));
  const buf = new Uint8Array(batch * rowBytes);
  for (let r = start; r < end; r += batch) {
    const rows = Math.min(batch, end - r);
    file.readIntoSync(t.begin + r * rowBytes, buf.subarray(0, rows * rowBytes));
    const values = decodeToF32(t.dtype, buf.subarray(0, rows * rowBytes));
    const cols = values.length / rows;
    for (let i = 0; i < rows; i++) if (!visit(values.subarray(i * cols, (i + 1) * cols), r + i)) return;
  }
}

const wholeFused = (m: PlacedModule) => m.placement.part === undefined && m.placement.rows === undefined && m.placement.module.parts.length >= 2;

/** Fused modules (by stem) whose up matrix is block-sparse: only those may have their down chunked by rank. */
export function findSparseFused(file: SafetensorsFile, parsed: ParsedLora): Set<string> {
  const sparse = new Set<string>();
  for (const m of parsed.placed) {
    const n = m.placement.module.parts.length;
    if (!wholeFused(m) || m.rank % n !== 0) continue;
    const k = m.rank / n;
    let ok = true;
    m.placement.module.parts.forEach((part, j) => {
      if (!ok) return;
      // Off-diagonal blocks must be exactly zero.
      eachRow(file, m.keys.up!, part.start, part.end, (row) => {
        for (let c = 0; c < m.rank; c++) if (Math.floor(c / k) !== j && row[c] !== 0) return (ok = false);
        return true;
      });
    });
    if (ok) sparse.add(m.base);
  }
  return sparse;
}

/**
 * Fused modules placed whole (by stem) with the parts whose up rows are all zero, when some part is
 * not: their delta is zero, so a split writes no module for them (a join of q alone leaves k and v
 * zero). A module that is zero everywhere (an untrained LoRA) keeps all its parts.
 */
export function findZeroParts(file: SafetensorsFile, parsed: ParsedLora): Map<string, Set<number>> {
  const out = new Map<string, Set<number>>();
  for (const m of parsed.placed) {
    if (!wholeFused(m)) continue;
    const zero = new Set<number>();
    m.placement.module.parts.forEach((part, j) => {
      let isZero = true;
      eachRow(file, m.keys.up!, part.start, part.end, (row) => (isZero = row.every((v) => v === 0)));
      if (isZero) zero.add(j);
    });
    if (zero.size > 0 && zero.size < m.placement.module.parts.length) out.set(m.base, zero);
  }
  return out;
}

/**
 * Native fused modules (by `native` name) covered by two or more split pieces of this file whose
 * down matrices are the same bytes (same dtype and shape): as convert's split writes them.
 */
export function findSharedDown(file: SafetensorsFile, parsed: ParsedLora): Set<string> {
  const groups = new Map<string, PlacedModule[]>();
  for (const m of parsed.placed) {
    if (m.placement.part === undefined || m.placement.module.parts.length < 2 || !m.keys.down) continue;
    const list = groups.get(m.placement.module.native) ?? [];
    list.push(m);
    groups.set(m.placement.module.native, list);
  }
  const shared = new Set<string>();
  for (const [native, pieces] of groups) {
    if (pieces.length < 2 || new Set(pieces.map((p) => p.placement.part)).size !== pieces.length) continue;
    const infos = pieces.map((p) => file.tensor(p.keys.down!));
    const first = infos[0]!;
    const sameLayout = infos.every((t) => t.dtype === first.dtype && t.shape.join() === first.shape.join() && t.end - t.begin === first.end - first.begin);
    if (!sameLayout) continue;
    const bytes = (t: typeof first) => {
      const b = new Uint8Array(t.end - t.begin);
      file.readIntoSync(t.begin, b);
      return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    };
    const ref = bytes(first);
    if (infos.slice(1).every((t) => ref.equals(bytes(t)))) shared.add(native);
  }
  return shared;
}
