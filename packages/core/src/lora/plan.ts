import { LoraspecError } from "../errors.js";
import { decodeToF32, type Dtype, encodeFromF32, isDecodable, writableDtype } from "./dtype.js";
import type { Architecture, ModuleSpec } from "./architectures.js";
import { describeMisfit, type KeyInfo, type Misfit, type ParsedLora, type PlacedModule, scaleOf, splitScale } from "./parse-lora.js";
import { lycorisArch, planLycoris, refuseAdapterKinds } from "./plan-lycoris.js";

/**
 * Output tensors of a convert or merge, each described as data: which input tensors (or which
 * rows/columns of them) go where, times which factor. The engine executes a plan by streaming;
 * unchanged bytes are copied through without decoding. Pure.
 */
export interface SrcRef {
  input: number;
  key: string;
}

export interface PlacePart {
  src: SrcRef;
  factor: number;
  /** Where the block lands in the output (2-D view: [shape[0], product of the rest]). */
  row: number;
  col: number;
  srcRows?: [number, number];
  srcCols?: [number, number];
  /** Swap the two halves of the selected rows (BFL shift|scale <-> diffusers scale|shift). */
  swapHalves?: boolean;
  /**
   * Parts whose factors multiply into one delta term (a LoRA piece's down and up, a LoKr/LoHa
   * module's factors): plan-fit.ts may move powers of two among them to keep every one in its dtype's range.
   */
  group?: string;
}

export type TensorOp = { op: "place"; parts: PlacePart[] } | { op: "scalar"; value: number };

export interface PlannedTensor {
  name: string;
  dtype: Dtype;
  shape: number[];
  op: TensorOp;
}

export type TargetFormat = "diffusers" | "kohya" | "comfy";

export interface PlanInput {
  parsed: ParsedLora;
  tensors: readonly KeyInfo[];
  /** Module stems whose fused up matrix is block-sparse (split_qkv layout): split A by rank chunks. */
  sparse?: ReadonlySet<string>;
  /**
   * Native fused modules (by `native` name) whose split pieces (diffusers q/k/v, proj_mlp) all carry
   * the same down matrix, byte for byte (as a split writes them): joined with that one down, so the
   * rank stays the pieces' rank instead of their sum.
   */
  sharedDown?: ReadonlySet<string>;
  /** Fused modules (by stem) placed whole whose up rows for some parts are all zero: those parts are not written when split. */
  zeroParts?: ReadonlyMap<string, ReadonlySet<number>>;
  /** The file's metadata and `.alpha` values: LoKr/LoHa scales (plan-lycoris.ts). */
  metadata?: Record<string, string>;
  alphas?: ReadonlyMap<string, number>;
}


const infoMaps = new WeakMap<readonly KeyInfo[], Map<string, KeyInfo>>();

function info(input: PlanInput, key: string): KeyInfo {
  let map = infoMaps.get(input.tensors);
  if (!map) infoMaps.set(input.tensors, (map = new Map(input.tensors.map((t) => [t.name, t]))));
  const t = map.get(key);
  if (!t) throw new LoraspecError("E_INTERNAL", `missing tensor ${key}`);
  return t;
}

/** Output key stems for a native module or one of its diffusers parts. */
function stem(arch: Architecture, module: ModuleSpec, target: TargetFormat, part?: number): string | undefined {
  if (target === "diffusers") {
    const prefix = arch.diffusersPrefix[module.component];
    if (prefix === undefined) return undefined;
    return prefix + module.parts[part ?? 0]!.name;
  }
  if (target === "comfy" && (module.component === "transformer" || module.component === "unet")) return `diffusion_model.${module.native}`;
  const prefix = arch.kohyaPrefix[module.component];
  return prefix === undefined ? undefined : prefix + module.native.replace(/\./g, "_");
}

/** One weighted LoRA contribution to a native module: A rows x B rows [row0, row0 + out). */
interface Piece {
  input: number;
  m: PlacedModule;
  /** Rows of the native weight this piece covers. */
  row0: number;
  rows: number;
  /** Total factor c = weight x scale. */
  factor: number;
  naming: "native" | "diffusers";
  dtype: Dtype;
}

/** Row order differs between namings only for swapHalves modules (final adaLN modulation). */
function needsSwap(p: Piece, module: ModuleSpec, target: TargetFormat): boolean {
  return Boolean(module.swapHalves) && p.naming !== (target === "diffusers" ? "diffusers" : "native");
}

function piecesOf(inputIndex: number, input: PlanInput, weight: number): Map<ModuleSpec, Piece[]> {
  const out = new Map<ModuleSpec, Piece[]>();
  for (const m of input.parsed.placed) {
    const { module, part, naming, rows } = m.placement;
    const range = part !== undefined ? module.parts[part]! : rows ? { start: rows[0], end: rows[1] } : { start: 0, end: module.shape[0]! };
    const piece: Piece = {
      input: inputIndex,
      m,
      row0: range.start,
      rows: range.end - range.start,
      factor: weight * scaleOf(m),
      naming,
      dtype: writableDtype(info(input, m.keys.down!).dtype),
    };
    const list = out.get(module) ?? [];
    list.push(piece);
    out.set(module, list);
  }
  return out;
}

/** Rows [a, b) of the native weight as seen by a piece (undefined when they do not overlap). */
function overlap(p: Piece, a: number, b: number): [number, number] | undefined {
  const lo = Math.max(a, p.row0), hi = Math.min(b, p.row0 + p.rows);
  return lo < hi ? [lo, hi] : undefined;
}

/**
 * Stacks pieces into one LoRA for rows [a, b) of `module`: A = cat(c_i A_i), B = [B_1 | B_2 | ...]
 * placed at the rows each covers. Exact: B A = sum c_i B_i A_i. Output scale is 1 (alpha = rank).
 * With `sharedDown` (pieces on disjoint rows with one down matrix A): A once, B_i scaled by c_i in
 * the same columns; B A = sum c_i B_i A as well, at the pieces' rank.
 */
function stack(pieces: Piece[], module: ModuleSpec, a: number, b: number, target: TargetFormat, names: { down: string; up: string; alpha?: string }, dtype: Dtype, sharedDown = false): PlannedTensor[] {
  const used = pieces.map((p) => ({ p, rows: overlap(p, a, b) })).filter((x) => x.rows !== undefined) as Array<{ p: Piece; rows: [number, number] }>;
  const rank = sharedDown ? used[0]!.p.m.rank : used.reduce((s, x) => s + x.p.m.rank, 0);
  // With an alpha in the target, the most common factor g moves into alpha (alpha = rank * g), so
  // pieces with that factor are byte copies; the others carry factor / g. Without alpha, all is baked.
  let g = 1;
  if (names.alpha) {
    const counts = new Map<number, number>();
    for (const { p } of used) if (p.factor !== 0) counts.set(p.factor, (counts.get(p.factor) ?? 0) + 1);
    g = [...counts].sort((x, y) => y[1] - x[1])[0]?.[0] ?? 1;
  }
  const downParts: PlacePart[] = [];
  const upParts: PlacePart[] = [];
  let col = 0;
  for (const { p, rows } of used) {
    const f = p.factor === g ? 1 : p.factor / g;
    // With one shared down (a byte copy, factor 1) each piece's scale is its up's alone: its own group, so
    // plan-fit.ts never moves a power of two into the down the other pieces read too.
    const { down, up } = sharedDown ? { down: 1, up: f } : splitScale(f);
    const group = `${p.input}:${p.m.base}:${a}`;
    if (!sharedDown) downParts.push({ src: { input: p.input, key: p.m.keys.down! }, factor: down, row: col, col: 0, group });
    else if (downParts.length === 0) downParts.push({ src: { input: p.input, key: p.m.keys.down! }, factor: 1, row: 0, col: 0 });
    const local: [number, number] = [rows[0] - p.row0, rows[1] - p.row0];
    upParts.push({ src: { input: p.input, key: p.m.keys.up! }, factor: up, row: rows[0] - a, col, srcRows: local, swapHalves: needsSwap(p, module, target) || undefined, group });
    if (!sharedDown) col += p.m.rank;
  }
  const downShape = [rank, ...module.shape.slice(1)];
  const upShape = [b - a, rank, ...module.shape.slice(2).map(() => 1)];
  const out: PlannedTensor[] = [
    { name: names.down, dtype, shape: downShape, op: { op: "place", parts: downParts } },
    { name: names.up, dtype, shape: upShape, op: { op: "place", parts: upParts } },
  ];
  if (names.alpha) {
    const value = rank * g;
    // The alpha must hold rank * g exactly: keep the weights' dtype when it can, else F32.
    const exact = dtype !== "F32" && dtype !== "F64" && decodeToF32(dtype, encodeFromF32(dtype, new Float32Array([value])))[0] === Math.fround(value) && Math.fround(value) === value;
    out.push({ name: names.alpha, dtype: exact || dtype === "F32" || dtype === "F64" ? dtype : "F32", shape: [], op: { op: "scalar", value } });
  }
  return out;
}

export interface Plan {
  tensors: PlannedTensor[];
  /** Keys that were not placed and were dropped (only with allowDrop). */
  dropped: string[];
}

function suffixes(target: TargetFormat): { down: string; up: string; alpha?: string } {
  return target === "diffusers" ? { down: ".lora_A.weight", up: ".lora_B.weight" } : { down: ".lora_down.weight", up: ".lora_up.weight", alpha: ".alpha" };
}

/** Why the first misfits do not place, for a message: "; shapes: a: down [..] ... (2 more)". */
function misfitNote(misfits: readonly Misfit[]): string {
  if (misfits.length === 0) return "";
  return `; shapes that do not fit: ${misfits.slice(0, 3).map(describeMisfit).join("; ")}${misfits.length > 3 ? ` (${misfits.length - 3} more)` : ""}`;
}

function unusedError(keys: string[], file?: string, misfits: readonly Misfit[] = []): LoraspecError {
  const mine = misfits.filter((m) => keys.some((k) => k.startsWith(`${m.base}.`)));
  return new LoraspecError("E_LORA_UNUSED_KEYS", `${keys.length} key(s) cannot be placed: ${keys.slice(0, 8).join(", ")}${keys.length > 8 ? ", ..." : ""}${misfitNote(mine)}`, {
    file,
    hint: "These keys are not plain LoRA weights of a known module for this target. Pass --allow-drop to drop them (they are then listed), or convert to another format.",
    details: { keys, misfits: mine },
  });
}

/**
 * No known base model places this file. When its module names are a model's but their shapes do not
 * fit (up and down of different ranks, another width: a broken or foreign file), that is the error,
 * naming the shapes; "cannot tell which base model" only when the names match none.
 */
export function unknownBaseError(parsed: ParsedLora, file?: string): LoraspecError {
  if (parsed.misfits.length > 0) {
    const n = parsed.misfits.length;
    return new LoraspecError("E_LORA_SHAPE_MISMATCH", `${n} module(s) are named like ${parsed.misfits[0]!.arch} modules, but their shapes do not fit${misfitNote(parsed.misfits).replace(/^; shapes that do not fit/, "")}`, {
      file,
      hint: "Its down and up factors disagree with each other, or it is for another base model that shares these module names (SD 1.5 and SDXL do in kohya names); `loraspec inspect` lists every key.",
      details: { misfits: parsed.misfits },
    });
  }
  return new LoraspecError("E_LORA_FORMAT_UNKNOWN", "cannot tell which base model this LoRA is for", { file, hint: "Run `loraspec inspect` on it to see its keys." });
}

/**
 * Refuses, before any work, what no plan can carry exactly: LoRA factors stored in a dtype that
 * holds no real numbers (C64, F4, F6), an alpha in such a dtype, and a non-finite alpha or scale.
 * Integer and bool factors and alphas are read as their values.
 */
export function checkPlannable(input: PlanInput, file?: string): void {
  for (const m of input.parsed.placed) {
    for (const key of [m.keys.down, m.keys.up, m.keys.alpha]) {
      if (key === undefined) continue;
      const t = info(input, key);
      if (!isDecodable(t.dtype)) {
        throw new LoraspecError("E_NOT_SUPPORTED", `${t.dtype} tensor: LoRA factors and alphas must hold real numbers`, {
          file,
          field: `tensor "${key}"`,
          hint: "Re-export the LoRA with float (or integer) tensors.",
          details: { tensor: key, dtype: t.dtype },
        });
      }
    }
    const alphaShape = m.keys.alpha === undefined ? [] : info(input, m.keys.alpha).shape;
    if (alphaShape.length > 1 || (alphaShape.length === 1 && alphaShape[0] !== 1)) {
      // Kohya and ComfyUI read an alpha as one number (`.item()`): any other shape has no scale to keep.
      throw new LoraspecError("E_NOT_SUPPORTED", `alpha of module "${m.base}" has shape ${JSON.stringify(alphaShape)}, not one number`, {
        file,
        field: `tensor "${m.keys.alpha}"`,
        hint: "The file's alpha is broken; fix or drop that module before converting or merging.",
        details: { module: m.base, shape: alphaShape },
      });
    }
    const scale = scaleOf(m);
    if (!Number.isFinite(scale)) {
      throw new LoraspecError("E_NOT_SUPPORTED", `alpha ${m.alpha} makes the scale of module "${m.base}" not a finite number`, {
        file,
        field: `tensor "${m.keys.alpha ?? m.base}"`,
        hint: "The file's alpha is broken; fix or drop that module before converting or merging.",
        details: { module: m.base, alpha: m.alpha },
      });
    }
  }
}

/**
 * Plans a format conversion with every key accounted for. Deltas are preserved exactly: scales
 * are baked into A/B (diffusers' scale_down/scale_up split) where the target has no alpha; fused
 * projections are split (copy A, split B rows; chunk A only when B is block-sparse; a part whose B
 * rows are all zero is not written) or joined (cat A, block-diagonal B, alpha = sum of ranks; one A
 * when the pieces share it, so kohya -> diffusers -> kohya keeps the rank). lora-formats.md §2b "Exact split / join".
 */
export function planConvert(params: { input: PlanInput; target: TargetFormat; allowDrop?: boolean; file?: string }): Plan {
  const { input, target } = params;
  const arch = input.parsed.arch ?? lycorisArch(input);
  if (!arch) throw unknownBaseError(input.parsed, params.file);
  checkPlannable(input, params.file);
  const drop = new Set(input.parsed.unplaced);
  const tensors: PlannedTensor[] = [];
  const sfx = suffixes(target);
  for (const [module, pieces] of piecesOf(0, input, 1)) {
    const fused = module.parts.length > 1;
    const stems = target === "diffusers" && fused ? module.parts.map((_, i) => stem(arch, module, target, i)) : [stem(arch, module, target)];
    if (stems.some((s) => s === undefined)) {
      for (const p of pieces) for (const k of Object.values(p.m.keys)) if (k) drop.add(k);
      continue;
    }
    const dtype = pieces[0]!.dtype;
    const names = (s: string) => ({ down: s + sfx.down, up: s + sfx.up, alpha: sfx.alpha ? s + sfx.alpha : undefined });
    const single = pieces.length === 1 && pieces[0]!.rows === module.shape[0] ? pieces[0]! : undefined;
    if (target !== "diffusers") {
      if (single) {
        // Whole native module: copy A and B, keep alpha (or alpha = rank when the source had none).
        const p = single, s = stems[0]!;
        const m = p.m;
        tensors.push({ name: s + sfx.down, dtype, shape: info(input, m.keys.down!).shape, op: { op: "place", parts: [{ src: { input: 0, key: m.keys.down! }, factor: 1, row: 0, col: 0 }] } });
        tensors.push({ name: s + sfx.up, dtype: writableDtype(info(input, m.keys.up!).dtype), shape: info(input, m.keys.up!).shape, op: { op: "place", parts: [{ src: { input: 0, key: m.keys.up! }, factor: 1, row: 0, col: 0, swapHalves: needsSwap(p, module, target) || undefined }] } });
        const alphaDtype = m.keys.alpha ? writableDtype(info(input, m.keys.alpha).dtype) : dtype;
        tensors.push({ name: s + sfx.alpha!, dtype: alphaDtype, shape: [], op: { op: "scalar", value: m.alpha !== undefined && m.alpha !== 0 ? m.alpha : m.rank } });
      } else {
        tensors.push(...stack(pieces, module, 0, module.shape[0]!, target, names(stems[0]!), dtype, input.sharedDown?.has(module.native)));
      }
      continue;
    }
    // diffusers target: bake the scale, split fused modules.
    for (let i = 0; i < stems.length; i++) {
      const s = stems[i]!;
      const [a, b] = fused ? [module.parts[i]!.start, module.parts[i]!.end] : [0, module.shape[0]!];
      const covering = pieces.filter((p) => overlap(p, a, b));
      if (covering.length === 0) continue;
      if (covering.length > 1) {
        tensors.push(...stack(covering, module, a, b, target, names(s), dtype));
        continue;
      }
      const p = covering[0]!;
      if (p.rows === module.shape[0] && input.zeroParts?.get(p.m.base)?.has(i)) continue; // its delta is zero: no module
      const { down, up } = splitScale(p.factor);
      const k = p.m.rank / module.parts.length;
      const isSparse = fused && p.rows === module.shape[0] && Number.isInteger(k) && input.sparse?.has(p.m.base);
      const local: [number, number] = [a - p.row0, b - p.row0];
      const group = `0:${p.m.base}:${a}`;
      const downPart: PlacePart = isSparse
        ? { src: { input: 0, key: p.m.keys.down! }, factor: down, row: 0, col: 0, srcRows: [i * k, (i + 1) * k], group }
        : { src: { input: 0, key: p.m.keys.down! }, factor: down, row: 0, col: 0, group };
      const upPart: PlacePart = isSparse
        ? { src: { input: 0, key: p.m.keys.up! }, factor: up, row: 0, col: 0, srcRows: local, srcCols: [i * k, (i + 1) * k], group }
        : { src: { input: 0, key: p.m.keys.up! }, factor: up, row: 0, col: 0, srcRows: local, swapHalves: needsSwap(p, module, target) || undefined, group };
      const rank = isSparse ? k : p.m.rank;
      tensors.push({ name: s + sfx.down, dtype, shape: [rank, ...module.shape.slice(1)], op: { op: "place", parts: [downPart] } });
      tensors.push({ name: s + sfx.up, dtype: writableDtype(info(input, p.m.keys.up!).dtype), shape: [b - a, rank, ...module.shape.slice(2).map(() => 1)], op: { op: "place", parts: [upPart] } });
    }
  }
  // LoKr/LoHa modules and DoRA magnitudes: renamed with their scale (plan-lycoris.ts).
  const lycoris = planLycoris(input, arch, target);
  tensors.push(...lycoris.tensors);
  for (const k of lycoris.consumed) drop.delete(k);
  const dropped = [...drop];
  if (dropped.length > 0 && !params.allowDrop) throw unusedError(dropped, params.file, input.parsed.misfits);
  return { tensors, dropped };
}

/**
 * Every merge input, whatever the method, before any work: a known base model, the same one for
 * all, every key placed, every factor and scale plannable. Returns the shared architecture.
 */
export function checkMergeInputs(inputs: PlanInput[], files?: string[]): Architecture {
  inputs.forEach((inp, i) => {
    refuseAdapterKinds(inp, i, files?.[i]);
    if (!inp.parsed.arch) throw unknownBaseError(inp.parsed, files?.[i]);
  });
  const arch = inputs[0]?.parsed.arch;
  if (!arch) throw inputs[0] ? unknownBaseError(inputs[0].parsed, files?.[0]) : new LoraspecError("E_USAGE", "merge needs at least two LoRA files");
  inputs.forEach((inp, i) => {
    if (inp.parsed.arch?.id !== arch.id) {
      throw new LoraspecError("E_LORA_SHAPE_MISMATCH", `input ${i + 1} is for ${inp.parsed.arch?.title ?? "an unknown model"}, the first is for ${arch.title}: LoRAs of different base models cannot be merged`, {
        file: files?.[i],
        details: { first: arch.id, this: inp.parsed.arch?.id ?? null },
      });
    }
    if (inp.parsed.unplaced.length > 0) {
      throw new LoraspecError("E_LORA_UNUSED_KEYS", `${inp.parsed.unplaced.length} key(s) cannot be merged: ${inp.parsed.unplaced.slice(0, 8).join(", ")}${inp.parsed.unplaced.length > 8 ? ", ..." : ""}${misfitNote(inp.parsed.misfits)}`, {
        file: files?.[i],
        hint: "Only plain LoRA modules of a known base model can be merged; `loraspec inspect` lists these keys.",
        details: { keys: inp.parsed.unplaced, misfits: inp.parsed.misfits },
      });
    }
    checkPlannable(inp, files?.[i]);
  });
  return arch;
}

/**
 * Plans an exact `cat` merge: per native module, A = cat(w_i s_i A_i) and B = [B_1 | B_2 | ...],
 * so B A = sum_i w_i s_i B_i A_i; rank = sum of ranks, alpha = rank (scale 1). Modules missing from
 * some inputs simply get fewer pieces. Every input must share the architecture.
 */
export function planCatMerge(params: { inputs: PlanInput[]; weights: number[]; target: TargetFormat; files?: string[] }): Plan {
  const { inputs, weights, target } = params;
  const arch = checkMergeInputs(inputs, params.files);
  const all = new Map<ModuleSpec, Piece[]>();
  inputs.forEach((inp, i) => {
    for (const [module, pieces] of piecesOf(i, inp, weights[i]!)) all.set(module, [...(all.get(module) ?? []), ...pieces]);
  });
  const sfx = suffixes(target);
  const tensors: PlannedTensor[] = [];
  const dropped: string[] = [];
  for (const [module, pieces] of all) {
    const fused = module.parts.length > 1;
    const dtype = pieces[0]!.dtype;
    const ranges = target === "diffusers" && fused ? module.parts.map((p, i) => ({ i, a: p.start, b: p.end })) : [{ i: undefined as number | undefined, a: 0, b: module.shape[0]! }];
    for (const r of ranges) {
      const s = stem(arch, module, target, r.i);
      if (s === undefined) {
        for (const p of pieces) for (const k of Object.values(p.m.keys)) if (k) dropped.push(k);
        continue;
      }
      if (!pieces.some((p) => overlap(p, r.a, r.b))) continue;
      // A diffusers target has no alpha: stacked pieces already carry scale 1.
      tensors.push(...stack(pieces, module, r.a, r.b, target, { down: s + sfx.down, up: s + sfx.up, alpha: sfx.alpha ? s + sfx.alpha : undefined }, dtype));
    }
  }
  if (dropped.length > 0) throw unusedError(dropped, params.files?.[0]);
  return { tensors, dropped };
}
