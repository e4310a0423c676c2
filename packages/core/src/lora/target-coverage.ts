import { LORA_TARGETS, matchesPattern, TARGET_PRESETS, type TargetArch, type TargetPreset } from "../knowledge/lora-targets.js";
import type { Architecture, ArchId, ModuleSpec } from "./architectures.js";

/**
 * Which network.targets preset a LoRA file trains (knowledge/lora-targets.ts), counted in diffusers
 * modules of the denoiser: a fused native module (Kohya's FLUX.1 linear1) covers each of its parts.
 * `inspect` reports it; a file from Kohya's default SDXL run reads all-linear, 722 of 722. Pure.
 */
const TARGET_ARCH: Record<ArchId, TargetArch> = {
  sdxl: "sdxl",
  flux1: "flux1",
  "flux2-dev": "flux2-klein",
  "flux2-klein-9b": "flux2-klein",
  "flux2-klein-4b": "flux2-klein",
  "qwen-image": "qwen-image",
  zimage: "zimage",
};

export interface TargetCoverage {
  /** The preset whose modules the file trains exactly, else custom. */
  preset: TargetPreset | "custom";
  /** Modules of the transformer blocks the file trains, of `blockModules`. */
  covered: number;
  blockModules: number;
  /** Denoiser modules outside the transformer blocks it trains (embedders, final layer). */
  outside: number;
  /** How many modules each preset has on this architecture. */
  presets: Record<TargetPreset, number>;
}

const adaptable = (m: ModuleSpec) => m.shape.length === 2 || (m.shape[2] === 1 && m.shape[3] === 1);

export function targetCoverage(arch: Architecture, touched: ReadonlyArray<{ module: ModuleSpec; part?: number }>): TargetCoverage | undefined {
  const table = LORA_TARGETS[TARGET_ARCH[arch.id]];
  const denoiser = arch.modules.filter((m) => (m.component === "unet" || m.component === "transformer") && adaptable(m));
  const names = denoiser.flatMap((m) => m.parts.map((p) => p.name));
  const blocks = new RegExp(table.blocks);
  const inBlocks = new Set(names.filter((n) => blocks.test(n)));
  const trained = new Set<string>();
  for (const t of touched) {
    if (t.module.component !== "unet" && t.module.component !== "transformer") continue;
    for (const [i, p] of t.module.parts.entries()) if (t.part === undefined || t.part === i) trained.add(p.name);
  }
  if (trained.size === 0) return undefined;
  const sets = Object.fromEntries(TARGET_PRESETS.map((p) => [p, new Set(names.filter((n) => matchesPattern(n, table.presets[p])))])) as Record<TargetPreset, Set<string>>;
  const same = (a: Set<string>, b: Set<string>) => a.size === b.size && [...a].every((x) => b.has(x));
  const preset = TARGET_PRESETS.find((p) => same(sets[p], trained)) ?? "custom";
  return {
    preset,
    covered: [...trained].filter((n) => inBlocks.has(n)).length,
    blockModules: inBlocks.size,
    outside: [...trained].filter((n) => !inBlocks.has(n)).length,
    presets: Object.fromEntries(TARGET_PRESETS.map((p) => [p, sets[p].size])) as Record<TargetPreset, number>,
  };
}
