import type { Sourced } from "./types.js";

/**
 * The dtype the built-in trainer's LoRA path computes in (the request's lora_compute; issue 22). The LoRA
 * parameters are fp32 master weights in both; "fp32" is peft's default (the LoRA Linear casts its input to the
 * fp32 weight's dtype, so the LoRA GEMMs run in fp32/TF32 on fp32 copies of each adapted layer's input), "bf16"
 * computes the LoRA path in the base's bf16 (worker/loraspec_worker/train/lora_compute.py: the input cast off,
 * F.linear(x, weight.to(x.dtype)); gradients reach the fp32 parameters as fp32). Only a plain LoRA's Linear
 * layers change; DoRA, LoKr and LoHa keep fp32. Core decides (plan/lora-compute.ts); the worker applies it
 * over a bf16 base only (an fp32 base on the CPU reports "fp32" as applied).
 */
export const LORA_COMPUTE_MODES = ["fp32", "bf16"] as const;
export type LoraCompute = (typeof LORA_COMPUTE_MODES)[number];

export interface LoraComputeRecord extends Sourced {
  /**
   * Worker arches whose bf16 LoRA compute was measured on a GPU (faster, its loss curve within the bench's check
   * of its fp32 twin), each with the figure in words: the plan chooses "bf16" only for these. Empty until a lease
   * runs bench/gpu-speed.py's lora-bf16 rows.
   */
  measuredArches: Readonly<Record<string, string>>;
  measuredSource: string;
  /** Why the lever exists: the H200 profile of SDXL's step with the fp32 LoRA path, in words. */
  profiled: string;
  profiledSource: string;
  /** What the peer trainers do, in words. */
  peers: string;
}

export const LORA_COMPUTE: LoraComputeRecord = {
  measuredArches: {},
  measuredSource: "bench/gpu-speed.py rows 'lora bf16' (bench/gpu_speed_configs.py), not run on a GPU yet",
  profiled:
    "SDXL attention preset, H200, eager step profiled: the LoRA's GEMMs 18.9 ms/step (5,457 calls) vs the frozen base's 17.0 ms, dtype copies (aten::copy_) 13.6 ms, mul 5.7, add 4.6: ~40 of ~102 ms GPU time is the fp32 LoRA path",
  profiledSource: "bench/gpu-speed.py --only sdxl --configs 1,4 --steps 30 --profile 4, H200 lease 2026-12-03 08:04-08:33",
  peers: "Kohya sd-scripts and ai-toolkit train LoRA under bf16 autocast (fp32 master weights, bf16 compute)",
  source:
    "peft 0.21.2 tuners/lora/layer.py Linear.forward (`x = self._cast_input_dtype(x, lora_A.weight.dtype)`), tuners/tuners_utils.py _cast_input_dtype (skipped when cast_input_dtype_enabled is False); Kohya sd-scripts train_network.py (accelerator.autocast around the forward); ai-toolkit (torch.autocast in its SD trainer)",
  asOf: "2026-12-03",
};
