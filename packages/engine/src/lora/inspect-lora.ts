import { decodeToF32, isDecodable } from "@loraspec/core/lora/dtype.js";
import { checkInputFile } from "./file-operands.js";
import { captionTagsFrom, type CaptionTags } from "@loraspec/core/lora/caption-tags.js";
import { describeMisfit, parseLora, scaleOf, type ParsedLora } from "@loraspec/core/lora/parse-lora.js";
import { lycorisArch } from "@loraspec/core/lora/plan-lycoris.js";
import { describeNetwork, type NetworkSummary } from "@loraspec/core/lora/network-kind.js";
import { targetCoverage, type TargetCoverage } from "@loraspec/core/lora/target-coverage.js";
import { scanNonFinite } from "./non-finite.js";
import { openSafetensors, type SafetensorsFile } from "./safetensors-file.js";

export interface InspectModule {
  key: string;
  native: string;
  diffusers?: string;
  component: string;
  rank: number;
  alpha?: number;
  scale: number;
}

export interface InspectReport {
  file: string;
  bytes: number;
  tensors: number;
  dtypes: Record<string, number>;
  format: ParsedLora["format"];
  traits: string[];
  /** The adapter kind (LoRA, DoRA, LoKr, LoHa) with its ranks, and LoKr's factor (core lora/network-kind.ts). */
  network: NetworkSummary;
  architecture?: { id: string; title: string };
  modules: InspectModule[];
  coverage?: { component: string; touched: number; defaultTargets: number; defaultTouched: number; total: number }[];
  /** The network.targets preset the file trains (or custom) and its share of the transformer blocks. */
  targets?: TargetCoverage;
  ranks: Record<string, number>;
  scales: Record<string, number>;
  components: string[];
  metadata: { ss: Record<string, string>; modelspec: Record<string, string>; other: Record<string, string> };
  /** Tags in >= TRIGGER_TAG_SHARE of a folder's captions (Kohya's ss_tag_frequency over ss_dataset_dirs img_count), then modelspec.trigger_phrase. */
  triggerWords: string[];
  /** The caption-tag histogram's most frequent tags, its size, and why no trigger could be read from it. */
  captionTags: Omit<CaptionTags, "triggerWords">;
  nonFinite: { tensor: string; nan: number; inf: number }[];
  unplaced: string[];
  /** Why modules named like a base model's did not place: their down/up shapes (core describeMisfit). */
  misfits: string[];
  nonLora: string[];
}

/** The base architecture: the plain LoRA modules' placement, else (a LoKr/LoHa file) the one its modules fit by name and shape. */
function archOf(parsed: ParsedLora, file: SafetensorsFile): InspectReport["architecture"] {
  const arch = parsed.arch ?? lycorisArch({ parsed, tensors: file.tensors });
  return arch ? { id: arch.id, title: arch.title } : undefined;
}

/** Reads the `.alpha` scalars of a file (tiny tensors), float, integer or bool, as values. */
export async function readAlphas(file: SafetensorsFile): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const t of file.tensors) {
    if (!t.name.endsWith(".alpha") || !isDecodable(t.dtype) || t.end - t.begin > 8) continue;
    // At most 8 bytes: a synchronous read each (hundreds of alphas, no promise per tensor).
    const bytes = new Uint8Array(t.end - t.begin);
    file.readIntoSync(t.begin, bytes);
    const v = decodeToF32(t.dtype, bytes);
    if (v.length === 1) out.set(t.name, v[0]!);
  }
  return out;
}

/** Trigger words (tags in nearly every caption of a folder, and modelspec.trigger_phrase): core lora/caption-tags.ts. */
export function triggerWordsFrom(metadata: Record<string, string>): string[] {
  return captionTagsFrom(metadata).triggerWords;
}

function splitTags({ triggerWords, ...captionTags }: CaptionTags): Pick<InspectReport, "triggerWords" | "captionTags"> {
  return { triggerWords, captionTags };
}

/** Everything a user wants to know about a LoRA file, without hiding any key. */
export async function inspectLora(params: { path: string; scanValues?: boolean }): Promise<InspectReport> {
  await checkInputFile(params.path, "<file>");
  const file = await openSafetensors({ path: params.path });
  try {
    const alphas = await readAlphas(file);
    const parsed = parseLora({ tensors: file.tensors, metadata: file.metadata, alphas });
    const dtypes: Record<string, number> = {};
    for (const t of file.tensors) dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    const modules: InspectModule[] = parsed.placed.map((m) => ({
      key: m.base,
      native: m.placement.module.native,
      diffusers: m.placement.part !== undefined ? m.placement.module.parts[m.placement.part]!.name : undefined,
      component: m.placement.module.component,
      rank: m.rank,
      alpha: m.alpha,
      scale: scaleOf(m),
    }));
    const ranks: Record<string, number> = {};
    const scales: Record<string, number> = {};
    for (const m of modules) {
      ranks[m.rank] = (ranks[m.rank] ?? 0) + 1;
      scales[String(m.scale)] = (scales[String(m.scale)] ?? 0) + 1;
    }
    let coverage: InspectReport["coverage"];
    if (parsed.arch) {
      const touched = new Set(parsed.placed.map((m) => m.placement.module));
      const comps = [...new Set(parsed.arch.modules.map((m) => m.component))];
      coverage = comps
        .map((component) => {
          const all = parsed.arch!.modules.filter((m) => m.component === component);
          const defaults = all.filter((m) => m.defaultTarget);
          return {
            component,
            touched: all.filter((m) => touched.has(m)).length,
            defaultTargets: defaults.length,
            defaultTouched: defaults.filter((m) => touched.has(m)).length,
            total: all.length,
          };
        })
        .filter((c) => c.touched > 0);
    }
    const nonFinite: InspectReport["nonFinite"] = params.scanValues !== false ? scanNonFinite(file) : [];
    const ss: Record<string, string> = {}, modelspec: Record<string, string> = {}, other: Record<string, string> = {};
    for (const [k, v] of Object.entries(file.metadata)) (k.startsWith("ss_") || k.startsWith("sshs_") ? ss : k.startsWith("modelspec.") ? modelspec : other)[k] = v;
    return {
      file: params.path,
      bytes: file.size,
      tensors: file.tensors.length,
      dtypes,
      format: parsed.format,
      traits: parsed.traits,
      network: describeNetwork(file.tensors, file.metadata),
      architecture: archOf(parsed, file),
      modules,
      coverage,
      targets: parsed.arch ? targetCoverage(parsed.arch, parsed.placed.map((m) => m.placement)) : undefined,
      ranks,
      scales,
      components: [...new Set(modules.map((m) => m.component))],
      metadata: { ss, modelspec, other },
      ...splitTags(captionTagsFrom(file.metadata)),
      nonFinite,
      unplaced: parsed.unplaced,
      misfits: parsed.misfits.map(describeMisfit),
      nonLora: parsed.nonLora.map((m) => m.base),
    };
  } finally {
    await file.close();
  }
}
