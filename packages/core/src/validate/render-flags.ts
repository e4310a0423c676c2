import { LoraspecError } from "../errors.js";
import type { BaseModelId } from "../knowledge/base-models.js";
import { SAMPLING, UNKNOWN_BASE_STEPS } from "../knowledge/sampling.js";

/**
 * What a render flag of `sample` and `validate` may be, checked before the worker loads a base: the
 * diffusers pipelines raise on anything else, after the load, as an uncoded error (SDXL: "`height` and
 * `width` have to be divisible by 8"; 0 steps: ZeroDivisionError; a negative side: a negative tensor
 * dimension). A side is a multiple of 8, the VAE's downscale (FLUX pipelines round to 16 with a warning).
 */
export const RENDER_FLAGS = {
  side: { what: "a positive multiple of 8 (the VAE downscales by 8)", ok: (n: number) => Number.isInteger(n) && n > 0 && n % 8 === 0 },
  count: { what: "a positive whole number", ok: (n: number) => Number.isInteger(n) && n > 0 },
  scale: { what: "a number >= 0", ok: (n: number) => Number.isFinite(n) && n >= 0 },
  seed: { what: "a whole number", ok: (n: number) => Number.isSafeInteger(n) },
} as const;

export type RenderFlagKind = keyof typeof RENDER_FLAGS;

/** The flag's value as a number, or E_USAGE naming the flag and what it may be; undefined when not given. */
export function parseRenderFlag(value: string | undefined, flag: string, kind: RenderFlagKind): number | undefined {
  if (value === undefined) return undefined;
  const n = value.trim() === "" ? NaN : Number(value);
  if (!RENDER_FLAGS[kind].ok(n)) throw new LoraspecError("E_USAGE", `${flag} must be ${RENDER_FLAGS[kind].what}, got '${value}'`, { field: flag });
  return n;
}

/**
 * The side validate (and export-script) renders at when --width/--height are not given, with the reason shown:
 * the contract's dataset.resolution, the size the LoRA trained at (and that loraspec's own samples during training
 * render at, compile/samples.ts); else the base's native resolution. The trainers render their training samples at a
 * size of their own (sd-scripts 512 unless `--w/--h`, ai-toolkit's sample width/height 512, its examples set to the
 * training resolution); a LoRA trained at 64 px on an SDXL-class base judged at 1024 measures an extrapolation, at
 * 256x the pixels of its training images.
 */
/**
 * The steps and guidance validate (and export-script) render with when --steps/--guidance are not
 * given: the base's sampling record (knowledge/sampling.ts), the numbers its training samples use in
 * every trainer, so a LoRA is judged as it was sampled (Z-Image Turbo at 9 steps and guidance 1,
 * schnell at 4, not 28 and the pipeline's CFG).
 */
export function defaultRenderSampling(base: BaseModelId | undefined): { steps: number; guidance?: number; why: string } {
  const record = base ? SAMPLING[base] : undefined;
  if (!record) return { steps: UNKNOWN_BASE_STEPS.steps, why: `no base model known: ${UNKNOWN_BASE_STEPS.steps} steps and the pipeline's own guidance` };
  return { steps: record.steps, guidance: record.guidance, why: `${base}'s sampling (${record.steps} steps, guidance ${record.guidance}), as its training samples` };
}

export function defaultRenderSide(trainedAt: number | undefined, native: number | undefined): { side: number; why: string } {
  const fallback = native ?? 1024;
  const baseWhy = native ? `the base's native resolution` : "no base model known: 1024";
  if (trainedAt === undefined) return { side: fallback, why: `${baseWhy} (the contract sets no dataset.resolution)` };
  if (!RENDER_FLAGS.side.ok(trainedAt)) return { side: fallback, why: `${baseWhy} (dataset.resolution ${trainedAt} is not a multiple of 8, which the VAE needs)` };
  return { side: trainedAt, why: "the contract's dataset.resolution, what the LoRA trained at" };
}
