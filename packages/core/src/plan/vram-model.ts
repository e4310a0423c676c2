import type { Contract } from "../contract/schema.js";
import type { QUANTIZATIONS } from "../contract/ids.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { SAMPLE_GRAPH_VRAM, VRAM_ACTIVATIONS, VRAM_MODEL, VRAM_SELECTIVE_ACTIVATIONS } from "../knowledge/vram.js";
import { BUILTIN_TRAINER, builtinArchOf } from "../knowledge/builtin-trainer.js";
import { BLOCK_SWAP_IN_FLIGHT, getBlockSwap } from "../knowledge/block-swap.js";
import { loraBf16SavingGb, quantizedBaseKeptGb, sampleMergeGb, targetActivationExtraGb } from "./vram-extras.js";
import { networkCost, networkMemoryGb } from "./network-cost.js";

export interface VramEstimate {
  /** GB (1e9 bytes), per GPU. */
  totalGb: number;
  parts: { weights: number; textEncoders: number; vae: number; lora: number; activations: number; overhead: number };
  /** Human-readable assumptions behind the numbers. */
  assumptions: string[];
  source: string;
}

/** The settings that move the peak, resolved (plan/train-settings.ts decides them). */
export interface VramSettings {
  gradientCheckpointing: boolean;
  /** What is recomputed: off, full (each block's forward; the default when checkpointing is on), selective (built-in trainer: each block's attention outputs kept, VRAM_SELECTIVE_ACTIVATIONS). */
  checkpointingMode?: "off" | "full" | "selective";
  /** Regional torch.compile of the repeated blocks (built-in trainer). */
  compile: boolean;
  /** Whole-step CUDA graph (built-in trainer, SDXL). */
  cudaGraphs: boolean;
  /** How the frozen base is held. */
  quantize: (typeof QUANTIZATIONS)[number];
  /** fp8 GEMMs for the frozen base (built-in trainer, FLUX.1): speed only, the peak is unchanged (measured within 1%). */
  fp8Matmul?: boolean;
  /** The attention kernel (built-in trainer; absent: torch's SDPA): speed only, the peak is unchanged (measured within 1%). */
  attention?: "sdpa" | "fa4";
  /** The LoRA path's dtype (built-in trainer, knowledge/lora-compute.ts): bf16 keeps no fp32 copies of the adapted layers' inputs (plan/vram-extras.ts loraBf16SavingGb). */
  loraCompute?: "fp32" | "bf16";
}

/**
 * Peak training VRAM per GPU with the additive model of perf-reliability.md §2.2, for explicit
 * settings. `hardware.block_swap` takes the swapped blocks' share of the base weights off the GPU
 * (where the trainer swaps blocks for this base: knowledge/block-swap.ts); CPU offload is not modelled.
 */
export function estimateVramWith(contract: Contract, model: BaseModelRecord, resolution: number, settings: VramSettings): VramEstimate {
  const hp = contract.hyperparameters;
  const q = settings.quantize;
  const assumptions: string[] = [];
  const bytes = q === "none" && hp.precision === "fp32" ? VRAM_MODEL.fp32BytesPerWeight : VRAM_MODEL.bytesPerWeight[q];
  const swapped = swappedFraction(contract, model);
  const weights = model.paramsB * bytes * (1 - swapped);
  assumptions.push(`base weights ${model.paramsB}B x ${bytes} B (${q === "none" ? hp.precision : q})${swapped > 0 ? `, ${Math.round(swapped * 100)}% swapped to CPU RAM (block_swap ${contract.hardware.block_swap} of ${model.blocks} blocks)` : ""}`);

  const textEncoders = hp.cache_text_encoder_outputs ? 0 : model.textEncoders.reduce((s, te) => s + te.bf16Gb, 0);
  assumptions.push(hp.cache_text_encoder_outputs ? "text-encoder outputs cached (encoders off the GPU)" : "text encoders resident in bf16");
  // The built-in trainer keeps the VAE on the GPU to decode its samples (train/samples.py).
  const sampleVae = contract.trainer.name === "diffusers" && contract.samples.every > 0;
  const vae = hp.cache_latents && !sampleVae ? 0 : VRAM_MODEL.vaeGb;
  assumptions.push(hp.cache_latents ? (sampleVae ? "latents cached, VAE resident for samples" : "latents cached (VAE off the GPU)") : "VAE resident");

  // network.type: DoRA/LoKr/LoHa hold other parameter counts than LoRA, and keep more for the backward (plan/network-cost.ts, measured).
  const tokens = model.tokensAtNative * (resolution / model.nativeResolution) ** 2;
  const kind = networkCost(contract, model);
  const loraParams = hp.rank * model.loraParamsPerRank * kind.paramsFactor;
  const kept = networkMemoryGb(contract, model, tokens * hp.batch_size, settings.gradientCheckpointing);
  const lora = (loraParams * VRAM_MODEL.loraBytesPerParam[hp.optimizer]) / 1e9 + (kept?.gb ?? 0);
  const what = kind.type === "lora" ? "LoRA" : `${kind.type} (x ${kind.paramsFactor.toFixed(kind.paramsFactor < 0.1 ? 3 : 2)} LoRA's params)`;
  assumptions.push(`${what} ${(loraParams / 1e6).toFixed(1)}M params x ${VRAM_MODEL.loraBytesPerParam[hp.optimizer]} B (${hp.optimizer})`);
  if (kept) assumptions.push(kept.assumption);

  const act = VRAM_ACTIVATIONS[model.family];
  const ckpt = settings.gradientCheckpointing;
  const compiled = settings.compile && !ckpt ? VRAM_MODEL.compileActivationFactor : 1;
  const selective = ckpt && settings.checkpointingMode === "selective" ? VRAM_SELECTIVE_ACTIVATIONS[model.family] : undefined;
  // Selective: full checkpointing's figure plus the tensors the policy keeps in each block (tokens x hidden each).
  const perToken = selective ? act.ckpt + selective.keptPerBlock * selective.bytesPerElement : ckpt ? act.ckpt : act.noCkpt;
  // network.targets beyond attention (Kohya's and ai-toolkit's default) and a peer's quantised base keep more inputs for the backward (plan/vram-extras.ts).
  const extras = [targetActivationExtraGb(model, contract, settings, tokens * hp.batch_size), quantizedBaseKeptGb(model, contract, settings, tokens * hp.batch_size)].filter((x) => x !== undefined);
  const bf16Lora = loraBf16SavingGb(model, contract, settings, tokens * hp.batch_size);
  const activations = (tokens * model.hidden * model.blocks * perToken * compiled * hp.batch_size) / 1e9 + extras.reduce((s, x) => s + x.gb, 0) - (bf16Lora?.gb ?? 0);
  const how = selective ? ` with selective checkpointing (${selective.kept} kept)` : ckpt ? " with gradient checkpointing" : " without checkpointing";
  assumptions.push(`activations ${Math.round(tokens)} tokens x batch ${hp.batch_size}${how}${compiled < 1 ? ", compiled" : ""}`);
  for (const x of extras) assumptions.push(x.assumption);
  if (bf16Lora) assumptions.push(bf16Lora.assumption);
  const graphs = settings.cudaGraphs ? VRAM_MODEL.cudaGraphsGb : 0;
  if (graphs) assumptions.push("whole-step CUDA graph buffers");
  // The built-in trainer's samples of an SDXL base replay a CUDA graph whose pool stays reserved (train/sample_graph.py).
  const sampleGraph = sampleVae && (BUILTIN_TRAINER.sampleGraph.arches as readonly string[]).includes(builtinArchOf(model.id).arch) ? SAMPLE_GRAPH_VRAM.gb : 0;
  if (sampleGraph) assumptions.push(`sample CUDA graph pool (+${sampleGraph} GB, estimate)`);
  // ... and render with the LoRA merged into a second copy of the targeted weights (train/sample_merge.py).
  const merged = sampleVae ? sampleMergeGb(model, contract, settings, bytes) : undefined;
  if (merged) assumptions.push(merged.assumption);
  const sampleMerge = merged?.gb ?? 0;

  // A peer's own measured peak (VRAM_PEER_ALL_LINEAR) holds what the published-figures allowance stood for.
  const external = contract.trainer.name === "diffusers" || extras.some((x) => x.measuredPeer) ? 0 : VRAM_MODEL.externalTrainerGb;
  if (external) assumptions.push(`${contract.trainer.name}: +${external} GB over the built-in trainer's measured fit (published figures)`);

  const subtotal = weights + textEncoders + vae + lora + activations;
  const overhead = VRAM_MODEL.contextGb + graphs + sampleGraph + sampleMerge + external + VRAM_MODEL.overheadFraction * subtotal;
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    totalGb: round(subtotal + overhead),
    parts: { weights: round(weights), textEncoders: round(textEncoders), vae: round(vae), lora: round(lora), activations: round(activations), overhead: round(overhead) },
    assumptions,
    source: [`${VRAM_MODEL.source}; activations: ${selective ? `${act.source}; selective: ${selective.source}` : act.source}`, ...extras.filter((x) => x.gb > 0 && x.source).map((x) => x.source), ...(sampleGraph ? [`sample graph: ${SAMPLE_GRAPH_VRAM.source}`] : []), ...(merged ? [merged.source] : [])].join("; "),
  };
}

/**
 * Share of the base weights block swap keeps off the GPU: the swapped blocks minus the ones in
 * flight (BLOCK_SWAP_IN_FLIGHT), of all blocks. 0 where the trainer cannot swap for this base.
 */
export function swappedFraction(contract: Contract, model: BaseModelRecord): number {
  const k = contract.hardware.block_swap ?? 0;
  const rec = getBlockSwap(contract.trainer.name, model.id);
  if (k <= 0 || !rec) return 0;
  const blocks = Math.min(k, rec.maxBlocks, model.blocks);
  return Math.max(0, blocks - BLOCK_SWAP_IN_FLIGHT.blocks) / model.blocks;
}
