import { LoraspecError } from "../errors.js";

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
