import type { Contract } from "../contract/schema.js";
import type { BaseModelRecord } from "../knowledge/base-models.js";
import { VRAM_MODEL } from "../knowledge/vram.js";

export interface VramEstimate {
  totalGb: number;
  parts: { weights: number; textEncoders: number; vae: number; lora: number; activations: number; overhead: number };
  /** Human-readable assumptions behind the numbers. */
  assumptions: string[];
  source: string;
}

/**
 * Peak training VRAM per GPU with the additive model of perf-reliability.md §2.2.
 * Block swap and CPU offload are not modelled (they only lower the figure).
 */
export function estimateVram(contract: Contract, model: BaseModelRecord, resolution: number): VramEstimate {
  const hp = contract.hyperparameters;
  const q = contract.base.quantize;
  const assumptions: string[] = [];
  const bytes = q === "none" && hp.precision === "fp32" ? VRAM_MODEL.fp32BytesPerWeight : VRAM_MODEL.bytesPerWeight[q];
  const weights = model.paramsB * bytes;
  assumptions.push(`base weights ${model.paramsB}B x ${bytes} B (${q === "none" ? hp.precision : q})`);

  const textEncoders = hp.cache_text_encoder_outputs ? 0 : model.textEncoders.reduce((s, te) => s + te.bf16Gb, 0);
  assumptions.push(hp.cache_text_encoder_outputs ? "text-encoder outputs cached (encoders off the GPU)" : "text encoders resident in bf16");
  const vae = hp.cache_latents ? 0 : VRAM_MODEL.vaeGb;
  assumptions.push(hp.cache_latents ? "latents cached (VAE off the GPU)" : "VAE resident");

  const loraParams = hp.rank * model.loraParamsPerRank;
  const lora = (loraParams * VRAM_MODEL.loraBytesPerParam[hp.optimizer]) / 1e9;
  assumptions.push(`LoRA ${(loraParams / 1e6).toFixed(1)}M params x ${VRAM_MODEL.loraBytesPerParam[hp.optimizer]} B (${hp.optimizer})`);

  const tokens = model.tokensAtNative * (resolution / model.nativeResolution) ** 2;
  const widthDepth = (model.hidden * model.blocks) / VRAM_MODEL.fluxHiddenTimesBlocks;
  const perSample = VRAM_MODEL.activationFixedGb + (tokens * VRAM_MODEL.activationMbPerTokenFlux * widthDepth) / 1000;
  const activations = perSample * hp.batch_size * (hp.gradient_checkpointing ? 1 : VRAM_MODEL.noCheckpointFactor);
  assumptions.push(
    `activations ${Math.round(tokens)} tokens x batch ${hp.batch_size}${hp.gradient_checkpointing ? " with gradient checkpointing" : " without checkpointing"}`,
  );

  const subtotal = weights + textEncoders + vae + lora + activations;
  const overhead = VRAM_MODEL.overheadGb + VRAM_MODEL.overheadFraction * subtotal;
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    totalGb: round(subtotal + overhead),
    parts: { weights: round(weights), textEncoders: round(textEncoders), vae: round(vae), lora: round(lora), activations: round(activations), overhead: round(overhead) },
    assumptions,
    source: VRAM_MODEL.source,
  };
}
