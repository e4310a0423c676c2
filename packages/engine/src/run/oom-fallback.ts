import type { Contract } from "@loraspec/core/contract/schema.js";
import { baseQuantizeOf } from "@loraspec/core/contract/base-quantize.js";
import { gradientCheckpointingOf } from "@loraspec/core/plan/train-settings.js";

export interface OomFallbackStep {
  /** The fallback applied (an entry of failure.oom_fallbacks). */
  fallback: string;
  /** What changed, for the run's log. */
  change: string;
  contract: Contract;
}

/**
 * The next of the contract's failure.oom_fallbacks that still changes something, applied to a copy
 * of the contract; undefined when on_oom is `fail` or nothing is left to try. The built-in worker
 * applies its own fallbacks; this is for trainers that just crash on OOM (sd-scripts: "none
 * (crash)", perf-reliability.md §4c).
 */
export function nextOomFallback(contract: Contract, tried: readonly string[]): OomFallbackStep | undefined {
  if (contract.failure.on_oom !== "fallback") return undefined;
  for (const fallback of contract.failure.oom_fallbacks) {
    if (tried.includes(fallback)) continue;
    const next = structuredClone(contract);
    const hp = next.hyperparameters;
    if (fallback === "gradient_checkpointing" && !gradientCheckpointingOf(contract)) {
      hp.gradient_checkpointing = true;
      return { fallback, change: "gradient_checkpointing: true", contract: next };
    }
    if (fallback === "optimizer_8bit" && hp.optimizer !== "adamw8bit" && hp.optimizer !== "lion8bit") {
      const from = hp.optimizer;
      hp.optimizer = "adamw8bit";
      return { fallback, change: `optimizer: ${from} -> adamw8bit`, contract: next };
    }
    if (fallback === "smaller_batch" && hp.batch_size > 1) {
      // Same effective batch: half the images per step, twice the accumulation.
      const from = hp.batch_size;
      hp.batch_size = Math.floor(from / 2);
      hp.gradient_accumulation = hp.gradient_accumulation * 2;
      return { fallback, change: `batch_size: ${from} -> ${hp.batch_size}, gradient_accumulation x2`, contract: next };
    }
    if (fallback === "quantize_base" && baseQuantizeOf(next) === "none") {
      next.base.quantize = "fp8";
      return { fallback, change: "base.quantize: none -> fp8", contract: next };
    }
    // cpu_offload and fallbacks that change nothing here: try the next one.
  }
  return undefined;
}
