import type { BaseModelId } from "./base-models.js";
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
   * of its fp32 twin), each with the figure in words: the plan chooses "bf16" only for these.
   */
  measuredArches: Readonly<Record<string, string>>;
  measuredSource: string;
  /**
   * Activation memory the bf16 path does not keep, derived per adapted layer input (plan/vram-extras.ts loraBf16SavingGb
   * walks the base's module map, lora/architectures.ts, with the request's target patterns), in bytes per element of
   * an input (tokens x in_features) or of a LoRA output (tokens x out_features):
   * - uncompiled (eager, the whole-step CUDA graph): peft casts the input to fp32 once per adapted layer, so an input read
   *   by n adapted layers (q, k and v; FLUX.1's single-block q, k, v and MLP input) is kept n times at `fp32` bytes, where
   *   the bf16 path keeps the bf16 input once (`bf16`) unless the graph keeps it anyway (the attention output, which SDPA
   *   saves for its backward: the output projections' inputs cost bf16 nothing); plus the largest adapted layer's LoRA
   *   output in flight (peft: `result + lora_B(lora_A(x)) * scaling`, two fp32 outputs where bf16 holds two bf16 ones:
   *   `inFlight` bytes per element, once);
   * - compiled (regional torch.compile): inductor casts each input once however many layers read it, so `fp32` once per
   *   input against the bf16 path's `bf16` (nothing where the input is kept anyway); nothing in flight (fused).
   * None with checkpointing (recomputed; measured: FLUX.1 24.81 vs 24.75 GiB). The pairs below check the rule.
   */
  inputCopies: { fp32: number; bf16: number; inFlight: number };
  /**
   * Each measured fp32 row and its bf16 twin (same base, targets and levers): torch.cuda.max_memory_allocated, GiB, 1024²,
   * batch 1, no checkpointing. test/plan/lora-compute-saving.spec.ts holds the derived saving to them.
   */
  measuredPairs: readonly {
    base: BaseModelId;
    targets: "attention" | "all-linear";
    /** The fp32 twin's bench/gpu-speed.py config name; the bf16 row adds "+ LoRA bf16". */
    config: string;
    compiled: boolean;
    fp32PeakGib: number;
    bf16PeakGib: number;
    source: string;
  }[];
  /** Why the lever exists: the H200 profile of SDXL's step with the fp32 LoRA path, in words. */
  profiled: string;
  profiledSource: string;
  /** What the peer trainers do, in words. */
  peers: string;
}

export const LORA_COMPUTE: LoraComputeRecord = {
  measuredArches: {
    sdxl: "SDXL on an H200, attention preset, batch 1: whole-step CUDA graph 0.106 -> 0.092 s/step, with regional compile 0.083 -> 0.078, eager 0.598 -> 0.535; peak 12.7 -> 10.8 GiB; loss curve within 0.01% mean / 0.02% max of the fp32 twin",
    "flux2-klein":
      "FLUX.2 [klein] on an H200, attention preset, batch 1, torch SDPA: 4B compile + fp8 GEMMs 0.178 -> 0.170 s/step, compile 0.202 -> 0.195, eager 0.291 -> 0.262; 9B 0.316 -> 0.300, 0.381 -> 0.367, 0.524 -> 0.467; peak 4B 21.1 -> 19.3 GiB eager, 9B 40.6 -> 37.4; loss curves within 0.001% mean / 0.003% max of the fp32 eager rows; 4B every linear of the blocks (100 modules): compile + fp8 GEMMs 0.178 s/step, peak 20.2 GiB",
    flux1:
      "FLUX.1 [dev] on an H200, attention preset, batch 1, torch SDPA: compile + fp8 GEMMs 0.396 -> 0.383 s/step, eager fused 0.556 -> 0.513; peak 44.6 -> 42.1 GiB compiled, 50.1 -> 41.6 eager; loss curve within 0.01% mean / 0.02% max of the fp32 eager row; every linear of the blocks (494 modules): 0.424 s/step, peak 52.2 GiB",
  },
  inputCopies: { fp32: 4, bf16: 2, inFlight: 4 },
  measuredPairs: [
    { base: "sdxl", targets: "attention", config: "fused AdamW + channels-last", compiled: false, fp32PeakGib: 12.639, bf16PeakGib: 10.746, source: "bench/data/gpu-speed-h200-2026-12-03-lora-bf16.jsonl" },
    { base: "sdxl", targets: "attention", config: "CUDA graph of the whole step + channels-last", compiled: false, fp32PeakGib: 12.732, bf16PeakGib: 10.808, source: "bench/data/gpu-speed-h200-2026-12-03-lora-bf16.jsonl" },
    { base: "sdxl", targets: "attention", config: "CUDA graph of the whole step + regional compile + channels-last", compiled: true, fp32PeakGib: 10.827, bf16PeakGib: 9.73, source: "bench/data/gpu-speed-h200-2026-12-03-lora-bf16-compile.jsonl" },
    { base: "flux1-dev", targets: "attention", config: "fused AdamW", compiled: false, fp32PeakGib: 50.128, bf16PeakGib: 41.567, source: "bench/data/gpu-speed-h200-2026-12-04-flux1-lora-bf16.jsonl" },
    { base: "flux1-dev", targets: "attention", config: "fast + fp8 GEMMs", compiled: true, fp32PeakGib: 44.638, bf16PeakGib: 42.115, source: "bench/data/gpu-speed-h200-2026-12-04-flux1-lora-bf16.jsonl" },
    {
      base: "flux1-dev",
      targets: "all-linear",
      config: "fast + fp8 GEMMs",
      compiled: true,
      fp32PeakGib: 62.054,
      bf16PeakGib: 52.212,
      source: "fp32: bench/data/gpu-speed-h200-2026-12-03-flux-alllinear-fa4.log (FA4: the peak is torch's kernel's alike); bf16: bench/data/gpu-speed-h200-2026-12-04-flux1-lora-bf16-all-linear.jsonl (52.212 again in both 2026-12-05 leases)",
    },
    { base: "flux2-klein-4b", targets: "attention", config: "eager", compiled: false, fp32PeakGib: 21.111, bf16PeakGib: 19.334, source: "bench/data/gpu-speed-h200-2026-12-04-klein-lora-bf16.jsonl" },
    { base: "flux2-klein-4b", targets: "attention", config: "fast", compiled: true, fp32PeakGib: 18.516, bf16PeakGib: 17.333, source: "bench/data/gpu-speed-h200-2026-12-04-klein-lora-bf16.jsonl" },
    { base: "flux2-klein-4b", targets: "attention", config: "fast + fp8 GEMMs", compiled: true, fp32PeakGib: 18.389, bf16PeakGib: 17.438, source: "bench/data/gpu-speed-h200-2026-12-04-klein-lora-bf16.jsonl" },
    { base: "flux2-klein-9b", targets: "attention", config: "eager", compiled: false, fp32PeakGib: 40.643, bf16PeakGib: 37.362, source: "bench/data/gpu-speed-h200-2026-12-04-klein-lora-bf16.jsonl" },
    { base: "flux2-klein-9b", targets: "attention", config: "fast", compiled: true, fp32PeakGib: 36.015, bf16PeakGib: 33.952, source: "bench/data/gpu-speed-h200-2026-12-04-klein-lora-bf16.jsonl" },
    { base: "flux2-klein-9b", targets: "attention", config: "fast + fp8 GEMMs", compiled: true, fp32PeakGib: 35.866, bf16PeakGib: 34.209, source: "bench/data/gpu-speed-h200-2026-12-04-klein-lora-bf16.jsonl" },
    { base: "flux2-klein-4b", targets: "all-linear", config: "fast", compiled: true, fp32PeakGib: 23.714, bf16PeakGib: 20.113, source: "bench/data/gpu-speed-h200-2026-12-04-klein4b-lora-bf16-all-linear.jsonl" },
  ],
  measuredSource:
    "bench/gpu-speed.py --only sdxl --configs 0,1,31,4,32 --steps 50 --profile 4 and --configs 26,33 --steps 30, H200 lease 2026-12-03 21:04-21:31 UTC (bench/data/gpu-speed-h200-2026-12-03-lora-bf16.jsonl, gpu-speed-h200-2026-12-03-lora-bf16-compile.jsonl); bench/gpu-speed.py --only flux1 --configs 10,11,34,20,35 --steps 50 and --configs 10,35 --targets all-linear --steps 30, H200 lease 2026-12-04 15:47-15:53 UTC (bench/data/gpu-speed-h200-2026-12-04-flux1-lora-bf16{,-all-linear}.jsonl); bench/gpu-speed.py --only klein4b --configs 16,17,29,36,37,38 --steps 50, --only klein9b --configs 18,19,30,39,40,41 --steps 50 and --only klein4b --configs 16,17,37,38 --targets all-linear --steps 50, H200 lease 2026-12-04 19:10-19:31 UTC (bench/data/gpu-speed-h200-2026-12-04-klein-lora-bf16.jsonl, gpu-speed-h200-2026-12-04-klein4b-lora-bf16-all-linear.jsonl); FLUX.2 [dev], Qwen-Image and Z-Image not measured yet",
  profiled:
    "SDXL attention preset, H200, eager step profiled: the LoRA's GEMMs 18.9 ms/step (5,457 calls) vs the frozen base's 17.0 ms, dtype copies (aten::copy_) 13.6 ms, mul 5.7, add 4.6: ~40 of ~102 ms GPU time is the fp32 LoRA path",
  profiledSource: "bench/gpu-speed.py --only sdxl --configs 1,4 --steps 30 --profile 4, H200 lease 2026-12-03 08:04-08:33",
  peers: "Kohya sd-scripts and ai-toolkit train LoRA under bf16 autocast (fp32 master weights, bf16 compute)",
  source:
    "peft 0.21.2 tuners/lora/layer.py Linear.forward (`x = self._cast_input_dtype(x, lora_A.weight.dtype)`), tuners/tuners_utils.py _cast_input_dtype (skipped when cast_input_dtype_enabled is False); Kohya sd-scripts train_network.py (accelerator.autocast around the forward); ai-toolkit (torch.autocast in its SD trainer)",
  asOf: "2026-12-05",
};
