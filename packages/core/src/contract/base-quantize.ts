import type { QUANTIZATIONS } from "./ids.js";
import type { Contract } from "./schema.js";

export type Quantization = (typeof QUANTIZATIONS)[number];

/**
 * base.quantize as a precision: what the contract wrote, else "none" (a bf16 base). Left out, the built-in
 * trainer's plan may still hold a FLUX-class base in fp8 when only that fits the VRAM ceiling
 * (plan/train-settings.ts); written, "none" included, it is the contract's pin and the plan keeps it.
 * Readers that do not plan (compilers of the other trainers, lint) read it through here.
 */
export function baseQuantizeOf(c: Pick<Contract, "base">): Quantization {
  return c.base.quantize ?? "none";
}

/** True when the contract writes base.quantize (any value, "none" included): the plan may not change it. */
export function quantizePinned(c: Pick<Contract, "base">): boolean {
  return c.base.quantize !== undefined;
}
