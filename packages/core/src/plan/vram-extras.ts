import type { Contract } from "../contract/schema.js";
import type { Quantization } from "../contract/base-quantize.js";
import { getBaseModel, type BaseModelId, type BaseModelRecord } from "../knowledge/base-models.js";
import { BUILTIN_TRAINER, builtinArchOf } from "../knowledge/builtin-trainer.js";
import { matchesPattern } from "../knowledge/lora-targets.js";
import { LORA_COMPUTE } from "../knowledge/lora-compute.js";
import { architectureOfBase, type ArchId, type ModuleSpec } from "../lora/architectures.js";
import { builtinTargetsIfKnown } from "../compile/network-targets.js";
import { sampleMergeKind } from "./sample-merge.js";
import { TRAIN_SPEEDS } from "../knowledge/train-speed.js";
import { TRAINER_SPEEDS } from "../knowledge/trainer-speeds.js";
import { VRAM_ALL_LINEAR_EXTRA, VRAM_PEER_ALL_LINEAR, VRAM_QUANTIZED_BASE_KEPT, type AllLinearExtraRecord, type PeerAllLinearRecord } from "../knowledge/vram.js";
import { attentionOnly, effectivePreset } from "./target-speed.js";

const GIB = 1024 ** 3;

export interface VramExtra {
  gb: number;
  assumption: string;
  source?: string;
  /** A peer trainer's own measured peak stands in: no published-figures allowance on top (VRAM_MODEL.externalTrainerGb). */
  measuredPeer?: boolean;
}

/** The record for a family: its own where measured, else FLUX.1's (derived). */
function allLinearRecord(model: BaseModelRecord): { rec: AllLinearExtraRecord; derived: boolean } {
  const own = VRAM_ALL_LINEAR_EXTRA[model.family];
  return own ? { rec: own, derived: false } : { rec: VRAM_ALL_LINEAR_EXTRA.flux1!, derived: true };
}

/** The built-in trainer's attention row (TRAIN_SPEEDS: torch's kernel, batch 1, no checkpointing) an all-linear peak is taken over. */
function attentionRowPeakGib(base: string, config: string, what: string): number {
  const row = TRAIN_SPEEDS.find((r) => !r.attention && !r.targets && r.base === base && r.config === config && r.batch === 1 && !r.gradientCheckpointing && r.peakAllocGib !== undefined);
  if (!row) throw new Error(`${what}: no TRAIN_SPEEDS row '${config}' for ${base}`);
  return row.peakAllocGib!;
}

/** Per token x hidden x block of a base, at its native resolution, batch 1. */
function perTokenHiddenBlock(base: string, gib: number): number {
  const model = getBaseModel(base as BaseModelId)!;
  return (gib * GIB) / (model.tokensAtNative * model.hidden * model.blocks);
}

/**
 * Bytes per token x hidden x block per sample an all-linear LoRA keeps beyond the attention preset:
 * the measured all-linear peak over its attention row in TRAIN_SPEEDS (same base and config).
 */
export function allLinearBytesPerTokenHiddenBlock(rec: AllLinearExtraRecord): number {
  return perTokenHiddenBlock(rec.base, rec.allLinearPeakGib - attentionRowPeakGib(rec.base, rec.attentionConfig, "VRAM_ALL_LINEAR_EXTRA"));
}

/** A peer trainer's measured all-linear peak (TRAINER_SPEEDS: bf16 base, batch 1, no checkpointing), GiB. */
function peerPeakGib(trainer: "kohya" | "ai-toolkit", rec: PeerAllLinearRecord): number {
  const row = TRAINER_SPEEDS.find((r) => r.trainer === trainer && r.base === rec.base && r.quantize === "none" && r.batch === 1 && !r.gradientCheckpointing && r.peakAllocGib !== undefined);
  if (!row) throw new Error(`VRAM_PEER_ALL_LINEAR: no TRAINER_SPEEDS ${trainer} row with a peak for ${rec.base}`);
  return row.peakAllocGib!;
}

/**
 * Bytes per token x hidden x block per sample a peer trainer's all-linear LoRA keeps beyond the built-in trainer's
 * attention row (knowledge/vram.ts VRAM_PEER_ALL_LINEAR): its measured peak over that row.
 */
export function peerAllLinearBytesPerTokenHiddenBlock(trainer: "kohya" | "ai-toolkit", rec: PeerAllLinearRecord): number {
  return perTokenHiddenBlock(rec.base, peerPeakGib(trainer, rec) - attentionRowPeakGib(rec.base, rec.attentionConfig, "VRAM_PEER_ALL_LINEAR"));
}

/**
 * Extra activation memory of a LoRA that trains more than the attention projections (a LoRA keeps
 * each adapted module's input for its backward): a peer trainer's own measured record where it has one
 * (knowledge/vram.ts VRAM_PEER_ALL_LINEAR: Kohya's SDXL and FLUX.1), else the built-in trainer's
 * (VRAM_ALL_LINEAR_EXTRA), for every trainer (Kohya's and ai-toolkit's default is every linear). Without
 * checkpointing only (with it, the blocks' insides are recomputed).
 */
export function targetActivationExtraGb(model: BaseModelRecord, c: Contract, settings: { gradientCheckpointing: boolean }, tokens: number): VramExtra | undefined {
  if (attentionOnly(c, model)) return undefined;
  const preset = effectivePreset(c);
  if (settings.gradientCheckpointing) return { gb: 0, assumption: `LoRA on ${preset} with gradient checkpointing: no extra activations counted (recomputed)` };
  const trainer = c.trainer.name === "kohya" || c.trainer.name === "ai-toolkit" ? c.trainer.name : undefined;
  const peer = trainer && VRAM_PEER_ALL_LINEAR[trainer]?.[model.family];
  if (trainer && peer) {
    const perToken = peerAllLinearBytesPerTokenHiddenBlock(trainer, peer);
    const gb = (tokens * model.hidden * model.blocks * perToken) / 1e9;
    const measured = getBaseModel(peer.base)!.label;
    return {
      gb,
      assumption: `LoRA on ${preset}: +${gb.toFixed(1)} GB activations (${perToken.toFixed(1)} B per token x hidden x block: ${trainer}'s own peak on ${measured}, ${peerPeakGib(trainer, peer)} GiB, over the built-in trainer's attention row on an H200; no allowance on top)`,
      source: peer.source,
      measuredPeer: true,
    };
  }
  const { rec, derived } = allLinearRecord(model);
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
export function quantizedBaseKeptGb(model: BaseModelRecord, c: Contract, settings: { gradientCheckpointing: boolean; quantize: Quantization }, tokens: number): VramExtra | undefined {
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
export function sampleMergeGb(model: BaseModelRecord, c: Contract, settings: { quantize: Quantization; fp8Matmul?: boolean }, bytesPerWeight: number): VramExtra | undefined {
  const { arch, record } = builtinArchOf(model.id);
  if (c.trainer.name !== "diffusers" || !(c.samples.every > 0) || sampleMergeKind(arch, c.network.type, settings) !== "buffers") return undefined;
  const map = architectureOfBase(model.id);
  if (!map) throw new Error(`BUILTIN_TRAINER.sampleMerge lists ${arch}, whose base ${model.id} has no module map (lora/architectures.ts)`);
  const targets = builtinTargetsIfKnown(c, record.targets);
  if (!targets) return undefined; // network.modules names what the base lacks: lint says so
  const { patterns, preset } = targets;
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

/** The module maps whose layer inputs layerInput knows (SDXL's and the FLUX-class BFL names). */
const knowsInputs = (arch: ArchId) => arch === "sdxl" || arch.startsWith("flux");

/** One input of adapted layers: where it is read, how many tokens x features per sample at the native resolution. */
interface LayerInput {
  key: string;
  tokens: number;
  width: number;
  /** Kept for the backward whatever the LoRA does (the attention output: SDPA saves it). */
  kept: boolean;
}

/**
 * The input a native module reads, at the native resolution, batch 1: inputs read by several modules share a key (q, k
 * and v; SDXL's cross-attention k and v read the text states). SDXL (sgm names): the side of a transformer's tokens
 * halves where its channels double (320 / 640 / 1280 at latent side native/8 / 2 / 4); FLUX-class (BFL names): the
 * double blocks' img_* modules read the image tokens ((native/16)²), txt_* the text tokens (the rest), the single
 * blocks both; the modulation linears read one vector per sample.
 */
function layerInput(arch: ArchId, model: BaseModelRecord, m: ModuleSpec): LayerInput | undefined {
  const width = m.shape[1]!;
  if (arch === "sdxl") {
    const at = m.native.match(/^(.*\.transformer_blocks\.\d+)\.(attn1|attn2|ff)\.(.+)$/);
    const outer = m.native.match(/^(.*)\.(proj_in|proj_out)$/);
    if (!at && !outer) return undefined;
    const channels = at?.[3] === "net.0.proj" ? width : m.shape[0]!;
    const side = (model.nativeResolution / 8) * (320 / channels);
    const tokens = side * side;
    if (outer) return { key: m.native, tokens, width, kept: false };
    const [, block, part, name] = at!;
    if (name === "to_out.0") return { key: m.native, tokens, width, kept: true };
    if (part === "attn1" && /^to_[qkv]$/.test(name!)) return { key: `${block}.attn1`, tokens, width, kept: false };
    // The cross-attention's k and v read the text encoders' states (77 tokens), which the step holds anyway.
    if (part === "attn2" && /^to_[kv]$/.test(name!)) return { key: `${block}.attn2.context`, tokens: 77, width, kept: true };
    return { key: m.native, tokens, width, kept: false };
  }
  if (!arch.startsWith("flux")) return undefined;
  const image = (model.nativeResolution / 16) ** 2;
  const block = m.native.match(/^(double_blocks|single_blocks)\.\d+\.(.+)$/);
  if (!block) return undefined;
  const [, kind, name] = block;
  if (/mod(ulation)?\.lin$/.test(name!)) return { key: m.native, tokens: 1, width, kept: false };
  const tokens = kind === "single_blocks" ? model.tokensAtNative : name!.startsWith("img_") ? image : model.tokensAtNative - image;
  return { key: m.native, tokens, width, kept: /_attn\.proj$/.test(name!) };
}

/**
 * Bytes per sample at the native resolution the bf16 LoRA path does not keep for these target patterns
 * (knowledge/lora-compute.ts LORA_COMPUTE.inputCopies), with the adapted layer count; undefined where the base has no
 * module map whose inputs are known here.
 */
export function loraBf16SavingBytes(model: BaseModelRecord, patterns: readonly string[], compiled: boolean): { bytes: number; layers: number } | undefined {
  const map = architectureOfBase(model.id);
  if (!map || !knowsInputs(map.id)) return undefined;
  const arch = map.id;
  const { fp32, bf16, inFlight } = LORA_COMPUTE.inputCopies;
  const inputs = new Map<string, LayerInput & { readers: number }>();
  let layers = 0;
  let largestOut = 0;
  for (const m of map.modules) {
    if (m.component !== "unet" && m.component !== "transformer") continue;
    const matched = m.parts.filter((p) => matchesPattern(p.name, patterns));
    if (matched.length === 0) continue;
    const input = layerInput(arch, model, m);
    if (!input) continue;
    layers += matched.length;
    const seen = inputs.get(input.key);
    inputs.set(input.key, { ...input, readers: (seen?.readers ?? 0) + matched.length });
    for (const p of matched) largestOut = Math.max(largestOut, input.tokens * (p.end - p.start));
  }
  let bytes = 0;
  for (const i of inputs.values()) bytes += ((compiled ? fp32 : i.readers * fp32) - (i.kept ? 0 : bf16)) * i.tokens * i.width;
  if (!compiled) bytes += inFlight * largestOut;
  return { bytes, layers };
}

/**
 * The activations the bf16 LoRA path does not keep (settings.loraCompute "bf16"): peft's fp32 copies of each adapted
 * layer's input, derived from the adapted layers (loraBf16SavingBytes), scaled by tokens x batch. None with checkpointing,
 * for DoRA/LoKr/LoHa, or where the base's layer inputs are not known here.
 */
export function loraBf16SavingGb(model: BaseModelRecord, c: Contract, settings: { gradientCheckpointing: boolean; compile: boolean; loraCompute?: "fp32" | "bf16" }, tokens: number): VramExtra | undefined {
  if (settings.loraCompute !== "bf16" || settings.gradientCheckpointing || c.network.type !== "lora") return undefined;
  const targets = builtinTargetsIfKnown(c, builtinArchOf(model.id).record.targets);
  if (!targets) return undefined; // network.modules names what the base lacks: lint says so
  const { patterns, preset } = targets;
  const saved = loraBf16SavingBytes(model, patterns, settings.compile);
  if (!saved) return undefined;
  const gb = (saved.bytes * tokens) / model.tokensAtNative / 1e9;
  return {
    gb,
    assumption: `LoRA computed in bf16: -${gb.toFixed(1)} GB of fp32 layer-input copies (${saved.layers} adapted layers, ${preset}${settings.compile ? ", compiled: one copy per input" : ", one copy per layer"})`,
    source: `${LORA_COMPUTE.source}; derived from the module map (lora/architectures.ts), checked against ${LORA_COMPUTE.measuredPairs.length} measured pairs`,
  };
}
