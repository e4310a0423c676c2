import type { Dtype } from "./dtype.js";
import { type Architecture, type ArchId, architectures, type Component, type ModuleSpec } from "./architectures.js";

/**
 * Reads a LoRA's key list (names, dtypes, shapes): groups keys per adapted module, detects the
 * key format and the base architecture, and places every module on that architecture's module
 * map. Every key ends up placed or listed as unplaced: nothing is hidden. Pure.
 * Rules: reference/lora-formats.md §2 (naming), §2d (LyCORIS), §2f (detection order).
 */
export interface KeyInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
}

export type Role = "down" | "up" | "alpha" | "bias";

export interface ModuleKeys {
  /** The module's key stem, e.g. `lora_unet_double_blocks_0_img_attn_qkv`. */
  base: string;
  style: "updown" | "AB" | "dot" | "xlabs" | "lycoris";
  keys: Partial<Record<Role, string>>;
  /** Keys that are not plain LoRA (hada_*, lokr_*, diff, dora_scale, lora_mid, ...): never placed. */
  extra: string[];
}

export type LoraFormat =
  | "kohya"
  | "diffusers"
  | "ai-toolkit"
  | "comfy"
  | "peft"
  | "xlabs"
  | "bfl-control"
  | "onetrainer"
  | "lycoris"
  | "unknown";

export interface Placement {
  module: ModuleSpec;
  /** Index into module.parts when the file stores one part of a fused native module (diffusers to_q of qkv). */
  part?: number;
  /** Which naming the key used: matters for modules whose row order differs (swapHalves). */
  naming: "native" | "diffusers";
  /** Rows of the native weight the key covers when it is neither the whole nor a diffusers part (XLabs single-block qkv). */
  rows?: [number, number];
}

/**
 * XLabs FLUX.1 names (lora-formats.md §2b "XLabs"): processor LoRAs on the BFL modules; the single-block
 * `qkv_lora` covers only the first 3 x 3072 rows of linear1 (ComfyUI's linear1_qkv).
 */
function placeXlabs(base: string, arch: Architecture): Placement | undefined {
  if (arch.id !== "flux1") return undefined;
  const d = /^(?:diffusion_model\.)?double_blocks\.(\d+)\.processor\.(qkv|proj)_lora([12])$/.exec(base);
  const s = /^(?:diffusion_model\.)?single_blocks\.(\d+)\.processor\.(qkv|proj)_lora$/.exec(base);
  const find = (native: string) => arch.modules.find((m) => m.native === native);
  if (d) {
    const module = find(`double_blocks.${d[1]}.${d[3] === "1" ? "img" : "txt"}_attn.${d[2]}`);
    return module && { module, naming: "native" };
  }
  if (s) {
    const module = find(`single_blocks.${s[1]}.${s[2] === "qkv" ? "linear1" : "linear2"}`);
    if (!module) return undefined;
    return s[2] === "qkv" ? { module, naming: "native", rows: [0, 3 * module.shape[1]!] } : { module, naming: "native" };
  }
  return undefined;
}

export interface PlacedModule extends ModuleKeys {
  placement: Placement;
  rank: number;
  /** alpha from the file (kohya family), undefined when absent. */
  alpha?: number;
}

const SUFFIXES: Array<[string, Role | "extra", ModuleKeys["style"]]> = [
  [".lora_down.weight", "down", "updown"],
  [".lora_up.weight", "up", "updown"],
  [".lora_mid.weight", "extra", "updown"],
  [".lora_A.default.weight", "down", "AB"],
  [".lora_B.default.weight", "up", "AB"],
  [".lora_A.weight", "down", "AB"],
  [".lora_B.weight", "up", "AB"],
  [".lora_B.bias", "bias", "AB"],
  [".lora.down.weight", "down", "dot"],
  [".lora.up.weight", "up", "dot"],
  [".dora_scale", "extra", "updown"],
  [".lora_magnitude_vector", "extra", "AB"],
  [".alpha", "alpha", "updown"],
];

const LYCORIS_PARAMS = [
  "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
  "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t1", "lokr_t2",
  "oft_blocks", "rescale", "diff", "diff_b", "on_input", "w_norm", "b_norm",
  "a1.weight", "a2.weight", "b1.weight", "b2.weight", "bm.weight",
];

/** Groups keys into modules; keys that fit no LoRA pattern come back as `unknown`. */
export function groupKeys(names: readonly string[]): { modules: ModuleKeys[]; unknown: string[] } {
  const byBase = new Map<string, ModuleKeys>();
  const unknown: string[] = [];
  const get = (base: string, style: ModuleKeys["style"]) => {
    let m = byBase.get(base);
    if (!m) byBase.set(base, (m = { base, style, keys: {}, extra: [] }));
    return m;
  };
  for (const name of names) {
    const xlabs = /^(.*\.processor\.[a-z0-9_]+)\.(down|up)\.weight$/.exec(name);
    if (xlabs) {
      get(xlabs[1]!, "xlabs").keys[xlabs[2] as "down" | "up"] = name;
      continue;
    }
    const suffix = SUFFIXES.find(([s]) => name.endsWith(s));
    if (suffix) {
      const m = get(name.slice(0, -suffix[0].length), suffix[2]);
      if (suffix[1] === "extra") m.extra.push(name);
      else {
        if (suffix[1] !== "alpha") m.style = suffix[2];
        m.keys[suffix[1]] = name;
      }
      continue;
    }
    const ly = LYCORIS_PARAMS.find((p) => name.endsWith(`.${p}`));
    if (ly) {
      const m = get(name.slice(0, -(ly.length + 1)), "lycoris");
      if (!m.keys.down) m.style = "lycoris";
      m.extra.push(name);
      continue;
    }
    unknown.push(name);
  }
  return { modules: [...byBase.values()], unknown };
}

interface Lookup {
  arch: Architecture;
  /** underscored native or diffusers name (per component) -> placement */
  underscored: Map<string, Placement>;
  /** dotted native or diffusers name (per component) -> placement */
  dotted: Map<string, Placement>;
}

const lookups = new Map<ArchId, Lookup>();

function lookupFor(arch: Architecture): Lookup {
  let l = lookups.get(arch.id);
  if (l) return l;
  l = { arch, underscored: new Map(), dotted: new Map() };
  for (const module of arch.modules) {
    const c = module.component;
    const add = (name: string, p: Placement) => {
      if (!l!.dotted.has(`${c}:${name}`)) l!.dotted.set(`${c}:${name}`, p);
      const u = `${c}:${name.replace(/\./g, "_")}`;
      if (!l!.underscored.has(u)) l!.underscored.set(u, p);
    };
    add(module.native, { module, naming: "native" });
    module.parts.forEach((part, i) => add(part.name, module.parts.length === 1 ? { module, naming: "diffusers" } : { module, part: i, naming: "diffusers" }));
  }
  lookups.set(arch.id, l);
  return l;
}

/** Prefix families: how a key stem names a component and whether the rest is dotted. */
function candidates(base: string, arch: Architecture): Array<{ component: Component; rest: string; dotted: boolean }> {
  const out: Array<{ component: Component; rest: string; dotted: boolean }> = [];
  for (const [c, p] of Object.entries(arch.kohyaPrefix) as Array<[Component, string]>) if (base.startsWith(p)) out.push({ component: c, rest: base.slice(p.length), dotted: false });
  for (const [c, p] of Object.entries(arch.diffusersPrefix) as Array<[Component, string]>) if (base.startsWith(p)) out.push({ component: c, rest: base.slice(p.length), dotted: true });
  const main: Component = arch.kohyaPrefix.unet ? "unet" : "transformer";
  for (const p of ["diffusion_model.", "base_model.model.", "transformer.", "unet."]) if (base.startsWith(p)) out.push({ component: main, rest: base.slice(p.length), dotted: true });
  for (const p of ["lora_transformer_", "lycoris_"]) if (base.startsWith(p)) out.push({ component: main, rest: base.slice(p.length), dotted: false });
  out.push({ component: main, rest: base, dotted: true });
  // ComfyUI-saved text encoders: text_encoders.clip_l.transformer.<path>
  const te = /^text_encoders\.(clip_l|clip_g|t5xxl)\.transformer\.(.*)$/.exec(base);
  if (te) out.push({ component: te[1] === "clip_l" ? "te1" : te[1] === "clip_g" ? "te2" : "te3", rest: te[2]!, dotted: true });
  return out;
}

export function placeModule(base: string, arch: Architecture): Placement | undefined {
  const xlabs = placeXlabs(base, arch);
  if (xlabs) return xlabs;
  const l = lookupFor(arch);
  for (const c of candidates(base, arch)) {
    const p = c.dotted ? l.dotted.get(`${c.component}:${c.rest}`) : l.underscored.get(`${c.component}:${c.rest}`);
    if (p) return p;
  }
  return undefined;
}

export interface ParsedLora {
  format: LoraFormat;
  /** Extra traits: "dora", "lycoris:loha", "split-qkv-sparse" is added later by data checks. */
  traits: string[];
  arch?: Architecture;
  placed: PlacedModule[];
  /** Keys that could not be placed on the architecture (listed, never hidden). */
  unplaced: string[];
  /** Module groups that are not plain LoRA (LyCORIS, DoRA, diff): cannot be handled algebraically. */
  nonLora: ModuleKeys[];
  /**
   * Modules whose name is a module of a known base model but whose down/up shapes do not fit it (a
   * rank that differs between down and up, another width): of `arch`, or, when nothing placed, of the
   * model whose names they match. They stay unplaced; this says why.
   */
  misfits: Misfit[];
}

export interface Misfit {
  base: string;
  arch: string;
  down: number[];
  up: number[];
  /** The module's [out, in, ...] (out = its rows for a part of a fused module). */
  want: number[];
}

/** "lora_unet_x: down [4,640] and up [640,8] do not fit SDXL's [640,640] module (up has rank 8, down 4)". */
export function describeMisfit(m: Misfit): string {
  const why = m.up[1] !== m.down[0] ? `up has rank ${m.up[1]}, down ${m.down[0]}` : m.up[0] !== m.want[0] ? `up has ${m.up[0]} rows, the module ${m.want[0]}` : m.down[1] !== m.want[1] ? `down has ${m.down[1]} columns, the module ${m.want[1]}` : "kernel or extra dimensions differ";
  return `${m.base}: down ${JSON.stringify(m.down)} and up ${JSON.stringify(m.up)} do not fit ${m.arch}'s ${JSON.stringify(m.want)} module (${why})`;
}

function detectFormat(modules: ModuleKeys[], unknown: string[], metadata: Record<string, string>): { format: LoraFormat; traits: string[] } {
  const traits = new Set<string>();
  for (const m of modules) {
    for (const e of m.extra) {
      const p = e.slice(m.base.length + 1);
      traits.add(
        p.startsWith("hada_") ? "lycoris:loha" : p.startsWith("lokr_") ? "lycoris:lokr" : p.startsWith("diff") ? "full-diff" : p === "oft_blocks" ? "oft"
          : p === "dora_scale" || p === "lora_magnitude_vector" ? "dora" : p === "lora_mid.weight" ? "lycoris:locon-tucker" : `lycoris:${p}`,
      );
    }
  }
  const bases = modules.map((m) => m.base);
  const any = (re: RegExp) => bases.some((b) => re.test(b));
  const styles = new Set(modules.map((m) => m.style));
  let format: LoraFormat;
  if (styles.has("lycoris") || traits.has("lycoris:loha") || traits.has("lycoris:lokr") || traits.has("full-diff") || traits.has("oft")) format = "lycoris";
  else if (styles.has("xlabs")) format = "xlabs";
  else if (unknown.some((k) => k.endsWith("query_norm.scale")) || modules.some((m) => m.keys.bias)) format = "bfl-control";
  else if (any(/^lora_(unet|te\d?)_/)) format = "kohya";
  else if (any(/^lora_transformer_/)) format = "onetrainer";
  else if (any(/^lycoris_/)) format = "lycoris";
  else if (any(/^diffusion_model\./)) format = styles.has("AB") ? "ai-toolkit" : "comfy";
  else if (any(/^(transformer|unet|text_encoder(_2)?)\./)) format = /ai-toolkit/.test(metadata.software ?? "") ? "ai-toolkit" : "diffusers";
  else if (any(/^base_model\.model\./) || modules.some((m) => m.keys.down?.includes(".default."))) format = "peft";
  else if (styles.has("AB") || styles.has("updown")) format = "peft";
  else format = "unknown";
  if (format === "kohya" && any(/^lora_unet_.*_(hada|lokr)/)) traits.add("lycoris");
  return { format, traits: [...traits] };
}

/**
 * diffusers writes the LoraConfig as JSON in `__metadata__.lora_adapter_metadata`, keys prefixed with
 * the component ("transformer.lora_alpha", "unet.r", ...) [DF loaders/lora_base.py `_pack_dict_with_prefix`].
 * Returns the alpha that gives peft's scale (lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA) for a
 * lora_A/B module of `rank`, or undefined when the file says nothing (scale 1).
 */
function adapterAlpha(metadata: Record<string, string>, stem: string, rank: number): number | undefined {
  const raw = metadata.lora_adapter_metadata;
  if (!raw) return undefined;
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const prefix = /^(transformer|unet|text_encoder_2|text_encoder)\./.exec(stem)?.[1];
  if (!prefix) return undefined;
  const get = (k: string) => config[`${prefix}.${k}`];
  const path = stem.slice(prefix.length + 1);
  const patterns = (get("alpha_pattern") ?? {}) as Record<string, number>;
  const hit = Object.keys(patterns).find((p) => path === p || path.endsWith(`.${p}`));
  const alpha = hit !== undefined ? patterns[hit] : (get("lora_alpha") as number | undefined);
  if (typeof alpha !== "number") return undefined;
  return get("use_rslora") === true ? alpha * Math.sqrt(rank) : alpha;
}

/**
 * Whether down [r, in, ...] and up [out, r, ...] fit a module of shape `want` [out, in, ...]: a
 * Linear takes 2-D factors (or 1x1 trailing dims); a conv takes its kernel on down and 1x1 on up
 * (a 1x1 conv also takes 2-D factors).
 */
function shapesFit(down: number[], up: number[], want: number[], rank: number): boolean {
  if (down.length < 2 || up.length < 2 || down[1] !== want[1] || up[0] !== want[0] || up[1] !== rank) return false;
  const ones = (d: number[]) => d.every((x) => x === 1);
  const downTail = down.slice(2), wantTail = want.slice(2);
  const kernelOk = ones(wantTail) ? ones(downTail) : downTail.length === wantTail.length && downTail.every((x, i) => x === wantTail[i]);
  return kernelOk && ones(up.slice(2));
}

function scalarOf(shape: number[]): boolean {
  return shape.length === 0 || (shape.length === 1 && shape[0] === 1);
}

/**
 * Parses a key list. `alphas` gives the value of each `.alpha` key (read by the caller: they are
 * tiny); a missing alpha means scale 1 for lora_A/B files and alpha = rank for kohya files.
 */
export function parseLora(params: { tensors: readonly KeyInfo[]; metadata?: Record<string, string>; alphas?: ReadonlyMap<string, number>; arch?: ArchId }): ParsedLora {
  const info = new Map(params.tensors.map((t) => [t.name, t]));
  const { modules, unknown } = groupKeys(params.tensors.map((t) => t.name));
  const { format, traits } = detectFormat(modules, unknown, params.metadata ?? {});
  // Modules with non-LoRA parameters are reported; their plain down/up (if any) still place, and
  // the extra keys stay unplaced so convert/merge refuse them.
  const nonLora = modules.filter((m) => m.extra.length > 0);
  const plain = modules.filter((m) => m.keys.down !== undefined && m.keys.up !== undefined);

  // Pick the architecture that places the most modules with matching shapes.
  const pool = params.arch ? architectures().filter((a) => a.id === params.arch) : architectures();
  let best: { arch: Architecture; placed: PlacedModule[]; score: number; misfits: Misfit[] } | undefined;
  let mostMisfits: Misfit[] = [];
  for (const arch of pool) {
    const placed: PlacedModule[] = [];
    const misfits: Misfit[] = [];
    let score = 0;
    for (const m of plain) {
      const p = placeModule(m.base, arch);
      if (!p || !m.keys.down || !m.keys.up) continue;
      const down = info.get(m.keys.down)!.shape, up = info.get(m.keys.up)!.shape;
      const rows = p.part !== undefined ? p.module.parts[p.part]!.end - p.module.parts[p.part]!.start : p.rows ? p.rows[1] - p.rows[0] : p.module.shape[0]!;
      const want = [rows, ...p.module.shape.slice(1)];
      const rank = down[0] ?? 0;
      if (!shapesFit(down, up, want, rank)) {
        misfits.push({ base: m.base, arch: arch.title, down, up, want });
        continue;
      }
      const alphaKey = m.keys.alpha;
      const alpha = alphaKey !== undefined ? params.alphas?.get(alphaKey) : m.style === "AB" ? adapterAlpha(params.metadata ?? {}, m.base, rank) : undefined;
      placed.push({ ...m, placement: p, rank, alpha });
      score++;
    }
    if (!best || score > best.score) best = { arch, placed, score, misfits };
    if (misfits.length > mostMisfits.length) mostMisfits = misfits;
  }
  const arch = best && best.score > 0 ? best.arch : undefined;
  const misfits = arch ? best!.misfits : mostMisfits;
  const placed = arch ? best!.placed : [];
  const placedKeys = new Set<string>();
  for (const m of placed) for (const k of Object.values(m.keys)) if (k) placedKeys.add(k);
  const unplaced = params.tensors.map((t) => t.name).filter((n) => !placedKeys.has(n));
  for (const m of placed) if (m.keys.alpha && !scalarOf(info.get(m.keys.alpha)!.shape)) traits.push(`bad-alpha-shape:${m.keys.alpha}`);
  return { format: refineFormat(format, arch, placed), traits, arch, placed, unplaced, nonLora, misfits };
}

/**
 * `diffusion_model.` + lora_A/B is ai-toolkit's output for FLUX.2, Qwen-Image and Z-Image only; its
 * FLUX.1 output is `transformer.` + diffusers names. A FLUX.1 file of BFL names with that prefix is
 * therefore ComfyUI style (ComfyUI loads `diffusion_model.<bfl path>.lora_A.weight`)
 * [shared/reference/lora-formats.md §2b "ai-toolkit output (FLUX.1)", "ComfyUI format"; §2f].
 */
function refineFormat(format: LoraFormat, arch: Architecture | undefined, placed: readonly PlacedModule[]): LoraFormat {
  return format === "ai-toolkit" && arch?.id === "flux1" && placed.some((m) => m.base.startsWith("diffusion_model.")) ? "comfy" : format;
}

/** Scale the file applies to up @ down: alpha / rank for kohya-style alpha, else 1. */
export function scaleOf(m: { alpha?: number; rank: number }): number {
  // A rank-0 module adds nothing: its scale is moot, reported as 1 rather than alpha / 0.
  return m.alpha === undefined || m.alpha === 0 || m.rank === 0 ? 1 : m.alpha / m.rank;
}

/** diffusers' split of a scale into down/up factors (scale_down doubles while scale_down*2 < scale_up). */
export function splitScale(scale: number): { down: number; up: number } {
  // On |scale|, the sign kept on down: diffusers' loop never ends for a negative scale (and would
  // not for NaN either). Callers check scales are finite; this still terminates for any input.
  if (!Number.isFinite(scale) || scale === 0) return { down: scale, up: 1 };
  let down = Math.abs(scale), up = 1;
  while (down * 2 < up) {
    down *= 2;
    up /= 2;
  }
  return { down: scale < 0 ? -down : down, up };
}
