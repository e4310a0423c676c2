import { groupKeys, type KeyInfo, type ModuleKeys } from "./parse-lora.js";

/**
 * The adapter kind of a LoRA file and its size per kind, from parameter names and shapes
 * (lora-formats.md §2d): LoRA (down/up), DoRA (+ dora_scale / lora_magnitude_vector), LoKr (lokr_w1,
 * lokr_w2 or their _a/_b factors), LoHa (hada_w1_a ...). Works on any key naming (kohya, LyCORIS,
 * diffusers/peft) and without knowing the base model. Pure.
 */
export type NetworkKind = "lora" | "dora" | "lokr" | "loha" | "other";

export interface NetworkSummary {
  /** The kind every module has; "mixed" when they differ. */
  type: NetworkKind | "mixed";
  /** Modules per kind. */
  kinds: Partial<Record<NetworkKind, number>>;
  /** Modules per rank ("full" for a LoKr module whose factors are both full matrices). */
  ranks: Record<string, number>;
  /** LoKr: the Kronecker factor the file says it was trained with (ss_network_args or peft's decompose_factor). */
  factor?: number;
  /** LoKr: modules per w1 shape ("8x8"), the small Kronecker factor the factor chose. */
  w1Shapes?: Record<string, number>;
}

/** The adapter kind of one module, from its parameter names. */
export function moduleKind(m: ModuleKeys): NetworkKind {
  const params = m.extra.map((e) => e.slice(m.base.length + 1));
  if (params.some((p) => p.startsWith("lokr_"))) return "lokr";
  if (params.some((p) => p.startsWith("hada_"))) return "loha";
  if (m.keys.down && m.keys.up) return params.some((p) => p === "dora_scale" || p === "lora_magnitude_vector") ? "dora" : params.length ? "other" : "lora";
  return "other";
}

function rankOf(m: ModuleKeys, kind: NetworkKind, shape: (key: string) => number[] | undefined): string | undefined {
  const p = (name: string) => shape(`${m.base}.${name}`);
  if (kind === "lora" || kind === "dora") return String(shape(m.keys.down!)?.[0]);
  if (kind === "loha") return p("hada_w1_b") ? String(p("hada_w1_b")![0]) : undefined;
  if (kind === "lokr") {
    const decomposed = p("lokr_w2_b") ?? p("lokr_w1_b");
    return decomposed ? String(decomposed[0]) : "full";
  }
  return undefined;
}

function declaredFactor(metadata: Record<string, string>): number | undefined {
  const read = (raw: string | undefined, key: (k: string) => boolean): number | undefined => {
    if (!raw) return undefined;
    try {
      const o = JSON.parse(raw) as Record<string, unknown>;
      const hit = Object.entries(o).find(([k]) => key(k));
      const n = hit ? Number(hit[1]) : NaN;
      return Number.isInteger(n) ? n : undefined;
    } catch {
      return undefined;
    }
  };
  return read(metadata.ss_network_args, (k) => k === "factor") ?? read(metadata.lora_adapter_metadata, (k) => k.endsWith(".decompose_factor"));
}

export function describeNetwork(tensors: readonly KeyInfo[], metadata: Record<string, string> = {}): NetworkSummary {
  const shapes = new Map(tensors.map((t) => [t.name, t.shape]));
  const { modules } = groupKeys(tensors.map((t) => t.name));
  const kinds: NetworkSummary["kinds"] = {};
  const ranks: Record<string, number> = {};
  const w1Shapes: Record<string, number> = {};
  for (const m of modules) {
    const kind = moduleKind(m);
    kinds[kind] = (kinds[kind] ?? 0) + 1;
    const rank = rankOf(m, kind, (k) => shapes.get(k));
    if (rank !== undefined) ranks[rank] = (ranks[rank] ?? 0) + 1;
    const w1 = kind === "lokr" ? shapes.get(`${m.base}.lokr_w1`) : undefined;
    if (w1) w1Shapes[w1.join("x")] = (w1Shapes[w1.join("x")] ?? 0) + 1;
  }
  const present = Object.keys(kinds) as NetworkKind[];
  const type = present.length === 1 ? present[0]! : present.length === 0 ? "other" : "mixed";
  const out: NetworkSummary = { type, kinds, ranks };
  if (kinds.lokr) {
    const factor = declaredFactor(metadata);
    if (factor !== undefined) out.factor = factor;
    if (Object.keys(w1Shapes).length) out.w1Shapes = w1Shapes;
  }
  return out;
}
