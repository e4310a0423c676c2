import type { Contract } from "../contract/schema.js";
import { getBaseModel, type BaseModelRecord } from "../knowledge/base-models.js";
import { BUILTIN_TRAINER, builtinArchOf } from "../knowledge/builtin-trainer.js";
import { matchesPattern } from "../knowledge/lora-targets.js";
import { architectures } from "../lora/architectures.js";
import { resolveBuiltinTargets } from "../compile/network-targets.js";
import { sampleMergeKind } from "./sample-merge.js";
import { TRAIN_SPEEDS } from "../knowledge/train-speed.js";
import { VRAM_ALL_LINEAR_EXTRA, VRAM_QUANTIZED_BASE_KEPT, type AllLinearExtraRecord } from "../knowledge/vram.js";
import { attentionOnly, effectivePreset } from "./target-speed.js";

const GIB = 1024 ** 3;

export interface VramExtra {
  gb: number;
  assumption: string;
  source?: string;
}

/** The record for a family: its own where measured, else FLUX.1's (derived); none for SDXL. */
function allLinearRecord(model: BaseModelRecord): { rec: AllLinearExtraRecord; derived: boolean } | undefined {
  if (model.family === "sdxl") return undefined;
  const own = VRAM_ALL_LINEAR_EXTRA[model.family];
  return own ? { rec: own, derived: false } : { rec: VRAM_ALL_LINEAR_EXTRA.flux1!, derived: true };
}

/**
 * Bytes per token x hidden x block per sample an all-linear LoRA keeps beyond the attention preset:
 * the measured all-linear peak over its attention row in TRAIN_SPEEDS (same base and config).
 */
export function allLinearBytesPerTokenHiddenBlock(rec: AllLinearExtraRecord): number {
  const row = TRAIN_SPEEDS.find((r) => !r.attention && !r.targets && r.base === rec.base && r.config === rec.attentionConfig && r.batch === 1 && !r.gradientCheckpointing && r.peakAllocGib !== undefined);
  const base = getBaseModel(rec.base);
  if (!row || !base) throw new Error(`VRAM_ALL_LINEAR_EXTRA: no TRAIN_SPEEDS row '${rec.attentionConfig}' for ${rec.base}`);
  return ((rec.allLinearPeakGib - row.peakAllocGib!) * GIB) / (base.tokensAtNative * base.hidden * base.blocks);
}

/**
 * Extra activation memory of a LoRA that trains more than the attention projections (a LoRA keeps
 * each adapted module's input for its backward): knowledge/vram.ts VRAM_ALL_LINEAR_EXTRA, for every
 * trainer (Kohya's and ai-toolkit's default is every linear). Without checkpointing only (with it,
 * the blocks' insides are recomputed); SDXL's is not measured, so it gets none (said so).
 */
export function targetActivationExtraGb(model: BaseModelRecord, c: Contract, settings: { gradientCheckpointing: boolean }, tokens: number): VramExtra | undefined {
  if (attentionOnly(c, model)) return undefined;
  const preset = effectivePreset(c);
  const found = allLinearRecord(model);
  if (!found) return { gb: 0, assumption: `LoRA on ${preset}: SDXL's extra activation memory is not measured (none added)` };
  if (settings.gradientCheckpointing) return { gb: 0, assumption: `LoRA on ${preset} with gradient checkpointing: no extra activations counted (recomputed)` };
  const { rec, derived } = found;
  const perToken = allLinearBytesPerTokenHiddenBlock(rec);
  const gb = (tokens * model.hidden * model.blocks * perToken) / 1e9;
  const measured = getBaseModel(rec.base)!.label;
  return {
    gb,
    assumption: `LoRA on ${preset}: +${gb.toFixed(1)} GB activations (${perToken.toFixed(1)} B per token x hidden x block: ${measured}'s all-linear peak ${rec.allLinearPeakGib} GiB over its attention row on an H200${derived ? ", taken for this family" : ""})`,
    source: rec.source,
  };
}

/**
 * What a peer trainer's quantised base keeps beyond its weight bytes (knowledge/vram.ts
 * VRAM_QUANTIZED_BASE_KEPT: ai-toolkit's quanto linears keep their bf16 inputs). Without
 * checkpointing only, on FLUX-class models (SDXL's UNet is not measured: none, said so); undefined
 * where the trainer has no such record or the base is not quantised.
 */
export function quantizedBaseKeptGb(model: BaseModelRecord, c: Contract, settings: { gradientCheckpointing: boolean; quantize: Contract["base"]["quantize"] }, tokens: number): VramExtra | undefined {
  if (settings.quantize === "none" || (c.trainer.name !== "kohya" && c.trainer.name !== "ai-toolkit")) return undefined;
  const rec = VRAM_QUANTIZED_BASE_KEPT[c.trainer.name];
  if (!rec || !rec.quantizations.includes(settings.quantize)) return undefined;
  const what = `${c.trainer.name} ${settings.quantize} base`;
  if (model.family === "sdxl") return { gb: 0, assumption: `${what}: the inputs its quantised linears keep are not measured on SDXL (none added)` };
  if (settings.gradientCheckpointing) return { gb: 0, assumption: `${what} with gradient checkpointing: its kept linear inputs are recomputed (none counted, not measured)` };
  const gb = (tokens * model.hidden * model.blocks * rec.bytesPerTokenHiddenBlock) / 1e9;
  return {
    gb,
    assumption: `${what}: +${gb.toFixed(1)} GB for the inputs its quantised linears keep for the backward (${rec.bytesPerTokenHiddenBlock} B per token x hidden x block, measured on FLUX.1 qfloat8)`,
    source: rec.source,
  };
}

/**
 * The built-in trainer's merged sample weights (BUILTIN_TRAINER.sampleMerge; train/sample_merge.py): a second
 * copy of every base weight the LoRA targets, in the base's dtype, allocated at the first sample and kept for
 * the run. Derived from the full-size module map (lora/architectures.ts shapes) and the request's target
 * patterns: SDXL's attention preset 955M weights (1.91 GB in bf16), all-linear 2.21B (4.42 GB). None where the
 * samples keep the LoRA path (another arch or network type, an fp8 base, no samples), and for sampleMerge.perCallArches
 * (FLUX.1, klein): merged per call, they hold one layer's weight at a time, while the training's activations are free.
 */
export function sampleMergeGb(model: BaseModelRecord, c: Contract, settings: { quantize: Contract["base"]["quantize"]; fp8Matmul?: boolean }, bytesPerWeight: number): VramExtra | undefined {
  const { arch, record } = builtinArchOf(model.id);
  if (c.trainer.name !== "diffusers" || !(c.samples.every > 0) || sampleMergeKind(arch, c.network.type, settings) !== "buffers") return undefined;
  const map = architectures().find((a) => a.id === model.id);
  if (!map) throw new Error(`BUILTIN_TRAINER.sampleMerge lists ${arch}, whose base ${model.id} has no module map (lora/architectures.ts)`);
  const { patterns, preset } = resolveBuiltinTargets(c, record.targets);
  let weights = 0;
  let modules = 0;
  for (const m of map.modules) {
    if (m.component !== "unet" && m.component !== "transformer") continue;
    const perRow = m.shape.slice(1).reduce((a, b) => a * b, 1);
    for (const part of m.parts) {
      if (!matchesPattern(part.name, patterns)) continue;
      weights += (part.end - part.start) * perRow;
      modules += 1;
    }
  }
  const gb = (weights * bytesPerWeight) / 1e9;
  return {
    gb,
    assumption: `samples with the LoRA merged: +${gb.toFixed(2)} GB for a second copy of the ${modules} targeted weights (${preset}, ${(weights / 1e6).toFixed(0)}M x ${bytesPerWeight} B)`,
    source: "sample merge: lora/architectures.ts module shapes x the request's target patterns (train/sample_merge.py)",
  };
}
