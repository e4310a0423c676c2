import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { type Dtype, encodeFromF32 } from "@loraspec/core/lora/dtype.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { mergeLora } from "@loraspec/engine/lora/merge-lora.js";
import { writeSafetensors, type OutputTensor } from "@loraspec/engine/lora/write-safetensors.js";
import { denseDeltas, maxRel } from "./dense-delta.js";
import { randomF32, rng, tempDir } from "./helpers.js";

/**
 * Every place a plan scales a stored factor (convert's alpha bake into diffusers factors and into a
 * LoKr/LoHa first factor, `merge X:S`, a cat merge's weights baked for a diffusers target) keeps the
 * delta of F32, F16, BF16, F8_E4M3 and F8_E5M2 files for tiny, unit and huge scales: the output's
 * delta (float64, from the bytes written) equals the input's times the scale within 1e-6 (the
 * exactness specs' bound; the scales here are powers of two, so exact is possible; F16: TOLERANCE),
 * and nothing non-finite is written. The factors are built lopsided (one near the top of the dtype's range, the
 * other near its smallest normal), both ways round, so a scale put on the wrong factor overflows,
 * saturates or underflows: before, an F8 convert clamped lora_A at 448 (delta error 0.62) and an F16
 * one wrote Inf.
 */

const PREFIX = "lora_unet_input_blocks_4_1_transformer_blocks_0_";
const RANK = 4;
const DTYPES: Dtype[] = ["F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"];
/** |values| of the large and the small factor: near the dtype's largest finite / smallest normal for the narrow ones. */
const MAGNITUDE: Record<string, { big: number; small: number }> = {
  F32: { big: 100, small: 1e-3 }, BF16: { big: 100, small: 1e-3 },
  F16: { big: 4000, small: 2 ** -10 }, F8_E4M3: { big: 100, small: 2 ** -4 }, F8_E5M2: { big: 4000, small: 2 ** -10 },
};
const SCALES = { tiny: 2 ** -10, unit: 1, huge: 8 } as const;
/**
 * 1e-6 (exact) everywhere but F16, where a scale < 1 on factors that both hold subnormals has no exact
 * split: plan-fit.ts keeps the largest values normal and the subnormals round, no worse than one F16
 * rounding of the largest value (2^-11). F8 never takes that path (its rounding is 6-12%): it is exact
 * or written as F32.
 */
const TOLERANCE: Partial<Record<Dtype, number>> = { F16: 2 ** -11 };

function tensor(name: string, dtype: Dtype, shape: number[], magnitude: number, next: () => number): OutputTensor {
  return { name, dtype, shape, data: encodeFromF32(dtype, randomF32(shape.reduce((a, b) => a * b, 1), next, magnitude)) };
}

/** One plain LoRA module (attn1.to_q) with alpha = rank x alphaScale; `upBig` puts the large values in up. */
async function plainFile(path: string, dtype: Dtype, upBig: boolean, alphaScale: number): Promise<void> {
  const next = rng(3);
  const { big, small } = MAGNITUDE[dtype]!;
  const stem = `${PREFIX}attn1_to_q`;
  await writeSafetensors({
    path,
    metadata: { ss_network_alpha: String(RANK * alphaScale), ss_network_dim: String(RANK) },
    tensors: [
      tensor(`${stem}.lora_down.weight`, dtype, [RANK, 640], upBig ? small : big, next),
      tensor(`${stem}.lora_up.weight`, dtype, [640, RANK], upBig ? big : small, next),
      { name: `${stem}.alpha`, dtype: "F32", shape: [], data: encodeFromF32("F32", new Float32Array([RANK * alphaScale])) },
    ],
  });
}

/** A LoHa (attn1.to_k) and a LoKr (attn1.to_v) module, alpha = rank x alphaScale; `firstBig`: the scaled-first factor holds the large values. */
async function lycorisFile(path: string, dtype: Dtype, firstBig: boolean, alphaScale: number): Promise<void> {
  const next = rng(5);
  const { big, small } = MAGNITUDE[dtype]!;
  const [first, rest] = firstBig ? [big, small] : [small, big];
  const k = `${PREFIX}attn1_to_k`, v = `${PREFIX}attn1_to_v`;
  const alpha = (stem: string): OutputTensor => ({ name: `${stem}.alpha`, dtype: "F32", shape: [], data: encodeFromF32("F32", new Float32Array([RANK * alphaScale])) });
  await writeSafetensors({
    path,
    tensors: [
      tensor(`${k}.hada_w1_a`, dtype, [640, RANK], first, next), tensor(`${k}.hada_w1_b`, dtype, [RANK, 640], rest, next),
      tensor(`${k}.hada_w2_a`, dtype, [640, RANK], 1, next), tensor(`${k}.hada_w2_b`, dtype, [RANK, 640], 1, next), alpha(k),
      tensor(`${v}.lokr_w1`, dtype, [8, 8], first, next), tensor(`${v}.lokr_w2_a`, dtype, [80, RANK], rest, next), tensor(`${v}.lokr_w2_b`, dtype, [RANK, 80], 1, next), alpha(v),
    ],
  });
}

type Op = { name: string; lycoris: boolean; run: (input: string, output: string, s: number) => AsyncGenerator<unknown>; alphaScale: (s: number) => number; factor: (s: number) => number };
const OPS: Op[] = [
  { name: "convert -> diffusers (alpha baked)", lycoris: false, alphaScale: (s) => s, factor: () => 1, run: (i, o) => convertLora({ input: i, output: o, to: "diffusers" }) as AsyncGenerator<unknown> },
  { name: "merge X:S", lycoris: false, alphaScale: () => 1, factor: (s) => s, run: (i, o, s) => mergeLora({ inputs: [{ path: i, weight: s }], output: o, method: "cat" }) as AsyncGenerator<unknown> },
  { name: "cat X:S X:S --to diffusers", lycoris: false, alphaScale: () => 2, factor: (s) => 2 * s, run: (i, o, s) => mergeLora({ inputs: [{ path: i, weight: s }, { path: i, weight: s }], output: o, method: "cat", to: "diffusers" }) as AsyncGenerator<unknown> },
  { name: "LoHa/LoKr convert -> diffusers (scale in the first factor)", lycoris: true, alphaScale: (s) => s, factor: () => 1, run: (i, o) => convertLora({ input: i, output: o, to: "diffusers" }) as AsyncGenerator<unknown> },
  { name: "LoHa/LoKr convert -> kohya (alpha = rank, scale baked)", lycoris: true, alphaScale: (s) => s, factor: () => 1, run: (i, o) => convertLora({ input: i, output: o, to: "kohya" }) as AsyncGenerator<unknown> },
  { name: "LoHa/LoKr merge X:S", lycoris: true, alphaScale: () => 1, factor: (s) => s, run: (i, o, s) => mergeLora({ inputs: [{ path: i, weight: s }], output: o, method: "cat" }) as AsyncGenerator<unknown> },
];

const CASES = DTYPES.flatMap((dtype) => OPS.flatMap((op) => Object.entries(SCALES).flatMap(([scale, s]) => [true, false].map((big) => ({ dtype, op, scale, s, big })))));

describe("a baked scale never overflows, saturates or underflows a factor (dtype x scale x operation)", () => {
  it.each(CASES)("$dtype, $op.name, scale $scale, large values in the scaled factor: $big", async ({ dtype, op, s, big }) => {
    const dir = await tempDir();
    const input = join(dir, "in.safetensors"), output = join(dir, "out.safetensors");
    // The scaled factor (down for convert's bake of a scale > 1, up for merge X:S, the first LyCORIS factor) holds the large values when `big`.
    if (op.lycoris) await lycorisFile(input, dtype, big, op.alphaScale(s));
    else await plainFile(input, dtype, op.name === "merge X:S" ? big : !big, op.alphaScale(s));
    await collectEvents(op.run(input, output, s));
    const want = await denseDeltas(input), got = await denseDeltas(output);
    expect(got.nonFinite).toBe(0);
    expect([...got.deltas.keys()].sort()).toEqual([...want.deltas.keys()].sort());
    for (const [module, delta] of want.deltas) expect(maxRel(delta, got.deltas.get(module)!, op.factor(s)), module).toBeLessThan(TOLERANCE[dtype] ?? 1e-6);
  });

  it("the tester's files: an F8_E4M3 LoRA with alpha / rank 8 is exact; an F16 one with alpha 4000, rank 4 (not a power of two) has no Inf", async () => {
    const dir = await tempDir();
    const f8 = join(dir, "f8.safetensors"), f16 = join(dir, "f16.safetensors");
    await plainFile(f8, "F8_E4M3", false, 8);
    await plainFile(f16, "F16", false, 1000);
    // 1000 = 2^9 x 1.953125: the power of two moves exactly, the rest is rounded once in F16 (as README says), half an ulp.
    for (const [input, tol] of [[f8, 1e-6], [f16, 2 ** -10]] as const) {
      const out = join(dir, "out.safetensors");
      await collectEvents(convertLora({ input, output: out, to: "diffusers", overwrite: true }));
      const want = await denseDeltas(input), got = await denseDeltas(out);
      expect(got.nonFinite, input).toBe(0);
      for (const [module, delta] of want.deltas) expect(maxRel(delta, got.deltas.get(module)!), module).toBeLessThan(tol);
    }
  });

  it("a scale no split of F16 factors can hold (2^-30 on values spanning 4000 .. 2^-10): the scaled factor is written as F32, exact, with a warning", async () => {
    const dir = await tempDir();
    const input = join(dir, "in.safetensors"), output = join(dir, "out.safetensors");
    await plainFile(input, "F16", false, 2 ** -30);
    const events = await collectEvents(convertLora({ input, output, to: "diffusers" }));
    expect(events.filter((e) => e.type === "warning").map((e) => (e as { code: string }).code)).toEqual(["W_LORA_WIDENED"]);
    const want = await denseDeltas(input), got = await denseDeltas(output);
    expect(Object.values(got.dtypes).sort()).toEqual(["F16", "F32"]);
    for (const [module, delta] of want.deltas) expect(maxRel(delta, got.deltas.get(module)!), module).toBeLessThan(1e-6);
  });

  it("values that not even float32 holds once scaled: E_NOT_SUPPORTED naming the tensor, nothing written", async () => {
    const dir = await tempDir();
    const input = join(dir, "in.safetensors"), output = join(dir, "out.safetensors");
    const stem = `${PREFIX}attn1_to_q`;
    const next = rng(1);
    await writeSafetensors({
      path: input,
      tensors: [
        tensor(`${stem}.lora_down.weight`, "F32", [RANK, 640], 1e38, next),
        tensor(`${stem}.lora_up.weight`, "F32", [640, RANK], 1e38, next),
        { name: `${stem}.alpha`, dtype: "F32", shape: [], data: encodeFromF32("F32", new Float32Array([RANK * 2 ** 20])) },
      ],
    });
    const error = await collectEvents(convertLora({ input, output, to: "diffusers" })).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_NOT_SUPPORTED", field: expect.stringMatching(/^tensor "lora_unet_.*attn1_to_q\.lora_(down|up)\.weight"$/) });
    expect(existsSync(output)).toBe(false);
  });
});
