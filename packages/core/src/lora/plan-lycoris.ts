import { LoraspecError } from "../errors.js";
import { architectures, type Architecture, type ModuleSpec } from "./architectures.js";
import { moduleKind } from "./network-kind.js";
import { placeModule, type KeyInfo, type ModuleKeys, type ParsedLora } from "./parse-lora.js";
import type { PlannedTensor, TargetFormat } from "./plan.js";

/**
 * Converting LoKr, LoHa and DoRA modules between key formats (lora-formats.md §2d): the parameters
 * keep their names after the module stem (`lokr_w1`, `hada_w1_a`, ...), so a conversion is a rename
 * of the stem plus the scale. The scale is baked into the first factor (lokr_w1 / lokr_w1_a,
 * hada_w1_a), which every loader reads the same way: Kohya/ComfyUI targets get alpha = rank (scale 1)
 * for a rank-decomposed module and no alpha for a LoKr whose factors are both full (LyCORIS and
 * ComfyUI apply no alpha there; diffusers' _bake_lokr_alpha_ drops it). DoRA's magnitude is
 * `dora_scale` [out, 1] in Kohya/LyCORIS names and `lora_magnitude_vector` [out] in peft's (one
 * value per output row either way); its down/up go through the plain-LoRA plan. Only modules the
 * file holds whole are converted: a Kronecker or Hadamard delta of one fused projection cannot be
 * split into q/k/v (nor joined from them) exactly, so those stay unplaced and the caller refuses them.
 * Source scales: the module's `.alpha` (alpha / rank), else peft's adapter config in the metadata
 * (alpha / r, for every LoKr module as peft applies it), else 1. Pure.
 */

export interface LycorisInput {
  parsed: ParsedLora;
  tensors: readonly KeyInfo[];
  metadata?: Record<string, string>;
  alphas?: ReadonlyMap<string, number>;
}

type Kind = "lokr" | "loha";

interface Located {
  m: ModuleKeys;
  kind: Kind;
  module: ModuleSpec;
}

const param = (m: ModuleKeys, key: string) => key.slice(m.base.length + 1);

function kindOf(m: ModuleKeys): Kind | undefined {
  const params = m.extra.map((k) => param(m, k));
  if (m.keys.down || m.keys.up) return undefined;
  if (params.some((p) => p.startsWith("lokr_")) && params.every((p) => /^lokr_w[12](_[ab])?$/.test(p))) return "lokr";
  if (params.some((p) => p.startsWith("hada_")) && params.every((p) => /^hada_w[12]_[ab]$/.test(p))) return "loha";
  return undefined;
}

/** [out, in] of the module's delta, from its factors' shapes (Linear modules only). */
function deltaShape(m: ModuleKeys, kind: Kind, shape: (k: string) => number[] | undefined): [number, number] | undefined {
  const s = (p: string) => shape(`${m.base}.${p}`);
  if (kind === "loha") {
    const a = s("hada_w1_a"), b = s("hada_w1_b");
    return a?.length === 2 && b?.length === 2 ? [a[0]!, b[1]!] : undefined;
  }
  const side = (w: "w1" | "w2"): [number, number] | undefined => {
    const full = s(`lokr_${w}`), a = s(`lokr_${w}_a`), b = s(`lokr_${w}_b`);
    if (full?.length === 2) return [full[0]!, full[1]!];
    return a?.length === 2 && b?.length === 2 ? [a[0]!, b[1]!] : undefined;
  };
  const w1 = side("w1"), w2 = side("w2");
  return w1 && w2 ? [w1[0] * w2[0], w1[1] * w2[1]] : undefined;
}

function locate(input: LycorisInput, arch: Architecture): Located[] {
  const shapes = new Map(input.tensors.map((t) => [t.name, t.shape]));
  const out: Located[] = [];
  for (const m of input.parsed.nonLora) {
    const kind = kindOf(m);
    if (!kind) continue;
    const p = placeModule(m.base, arch);
    // whole native modules only: a part of a fused projection cannot carry a Kronecker/Hadamard delta
    if (!p || p.part !== undefined || p.rows || p.module.shape.length !== 2) continue;
    const d = deltaShape(m, kind, (k) => shapes.get(k));
    if (d && d[0] === p.module.shape[0] && d[1] === p.module.shape[1]) out.push({ m, kind, module: p.module });
  }
  return out;
}

/** The architecture of a file none of whose modules is plain LoRA: the one placing most LoKr/LoHa modules. */
export function lycorisArch(input: LycorisInput): Architecture | undefined {
  let best: { arch: Architecture; n: number } | undefined;
  for (const arch of architectures()) {
    const n = locate(input, arch).length;
    if (n > 0 && (!best || n > best.n)) best = { arch, n };
  }
  return best?.arch;
}

/** peft's alpha / r for a module of a diffusers-named file (LoKr/LoHa configs say `alpha`, `r`). */
function peftScale(metadata: Record<string, string>, stem: string): number | undefined {
  const raw = metadata.lora_adapter_metadata;
  const prefix = /^(transformer|unet|text_encoder_2|text_encoder)\./.exec(stem)?.[1];
  if (!raw || !prefix) return undefined;
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const path = stem.slice(prefix.length + 1);
  const pick = (name: string, patternName: string) => {
    const patterns = (config[`${prefix}.${patternName}`] ?? {}) as Record<string, number>;
    const hit = Object.keys(patterns).find((p) => path === p || path.endsWith(`.${p}`));
    return hit !== undefined ? patterns[hit] : (config[`${prefix}.${name}`] as number | undefined);
  };
  const alpha = pick("alpha", "alpha_pattern"), r = pick("r", "rank_pattern");
  return typeof alpha === "number" && typeof r === "number" && r > 0 ? alpha / r : undefined;
}

function rankOf(m: ModuleKeys, kind: Kind, shape: (k: string) => number[] | undefined): number | undefined {
  const s = (p: string) => shape(`${m.base}.${p}`);
  if (kind === "loha") return s("hada_w1_b")?.[0];
  return (s("lokr_w2_b") ?? s("lokr_w1_b"))?.[0];
}

export function stemFor(arch: Architecture, module: ModuleSpec, target: TargetFormat): string | undefined {
  if (target === "diffusers") {
    const prefix = arch.diffusersPrefix[module.component];
    return prefix === undefined || module.parts.length !== 1 ? undefined : prefix + module.parts[0]!.name;
  }
  if (target === "comfy" && (module.component === "transformer" || module.component === "unet")) return `diffusion_model.${module.native}`;
  const prefix = arch.kohyaPrefix[module.component];
  return prefix === undefined ? undefined : prefix + module.native.replace(/\./g, "_");
}

/**
 * The LoKr/LoHa modules of a file renamed to `target`, and DoRA magnitudes of the whole modules the
 * plain-LoRA plan converts; `consumed` lists every source key carried (the rest stay unplaced).
 */
export function planLycoris(input: LycorisInput, arch: Architecture, target: TargetFormat): { tensors: PlannedTensor[]; consumed: string[] } {
  const shapes = new Map(input.tensors.map((t) => [t.name, t]));
  const shape = (k: string) => shapes.get(k)?.shape;
  const tensors: PlannedTensor[] = [];
  const consumed: string[] = [];
  for (const { m, kind, module } of locate(input, arch)) {
    const stem = stemFor(arch, module, target);
    if (stem === undefined) continue;
    const rank = rankOf(m, kind, shape);
    const alpha = m.keys.alpha !== undefined ? input.alphas?.get(m.keys.alpha) : undefined;
    const scale = alpha !== undefined && alpha !== 0 && rank ? alpha / rank : m.keys.alpha === undefined ? (peftScale(input.metadata ?? {}, m.base) ?? 1) : 1;
    const first = kind === "loha" ? "hada_w1_a" : m.extra.some((k) => param(m, k) === "lokr_w1") ? "lokr_w1" : "lokr_w1_a";
    for (const key of m.extra) {
      const t = shapes.get(key)!;
      const p = param(m, key);
      tensors.push({ name: `${stem}.${p}`, dtype: t.dtype, shape: t.shape, op: { op: "place", parts: [{ src: { input: 0, key }, factor: p === first ? scale : 1, row: 0, col: 0, group: `lycoris:${m.base}` }] } });
      consumed.push(key);
    }
    if (m.keys.alpha) consumed.push(m.keys.alpha);
    if (target !== "diffusers" && rank !== undefined) tensors.push({ name: `${stem}.alpha`, dtype: "F32", shape: [], op: { op: "scalar", value: rank } });
  }
  // DoRA: the magnitude of each whole module the plain plan converts.
  for (const pm of input.parsed.placed) {
    const mag = pm.extra.find((k) => k.endsWith(".dora_scale") || k.endsWith(".lora_magnitude_vector"));
    const { module, part, rows } = pm.placement;
    if (!mag || part !== undefined || rows) continue;
    const stem = stemFor(arch, module, target);
    const t = shapes.get(mag)!;
    const out = t.shape[0]!;
    if (stem === undefined || out !== module.shape[0] || t.shape.slice(1).some((d) => d !== 1)) continue;
    const name = target === "diffusers" ? `${stem}.lora_magnitude_vector` : `${stem}.dora_scale`;
    tensors.push({ name, dtype: t.dtype, shape: target === "diffusers" ? [out] : [out, 1], op: { op: "place", parts: [{ src: { input: 0, key: mag }, factor: 1, row: 0, col: 0 }] } });
    consumed.push(mag);
  }
  return { tensors, consumed };
}

const KIND_TITLE: Record<string, string> = { lokr: "LoKr", loha: "LoHa" };

/**
 * A LoKr or LoHa module cannot be merged with other LoRAs: its delta (a Kronecker or Hadamard
 * product) is no low-rank pair to stack (cat) or to add in the low-rank space (svd), and the worker's
 * delta-space methods read plain LoRA only. Refused by kind and module, not as an unknown base model.
 */
export function refuseAdapterKinds(input: LycorisInput, index: number, file?: string): void {
  for (const m of input.parsed.nonLora) {
    const kind = moduleKind(m);
    // a LoKr/LoHa module has no down/up; a stray hada_/lokr_ key beside a plain LoRA is an unplaced key (E_LORA_UNUSED_KEYS)
    if ((kind !== "lokr" && kind !== "loha") || m.keys.down !== undefined || m.keys.up !== undefined) continue;
    const base = input.parsed.arch ?? lycorisArch(input);
    throw new LoraspecError("E_NOT_SUPPORTED", `input ${index + 1} is a ${KIND_TITLE[kind]} LoRA${base ? ` for ${base.title}` : ""}: its module "${m.base}" cannot be merged with other LoRAs`, {
      file,
      field: `tensor "${m.extra[0]}"`,
      hint: `A ${KIND_TITLE[kind]} delta is a ${kind === "lokr" ? "Kronecker" : "Hadamard"} product, not a low-rank pair: no merge method stacks or re-factors it exactly. Load the LoRAs side by side in the loader instead; \`merge ${file ?? "X"}:S\` alone scales it.`,
      details: { kind, module: m.base, input: index + 1 },
    });
  }
}
