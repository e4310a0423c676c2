import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { encodeFromF32, type Dtype } from "@loraspec/core/lora/dtype.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { inspectLora } from "@loraspec/engine/lora/inspect-lora.js";
import { mergeLora } from "@loraspec/engine/lora/merge-lora.js";
import { writeSafetensors, type OutputTensor } from "@loraspec/engine/lora/write-safetensors.js";
import { rng, tempDir } from "./helpers.js";

/**
 * Values a LoRA file can hold that no tool may carry on silently: NaN/Inf in a factor, an alpha
 * that is not one number. inspect lists them; convert and every merge method refuse them up front
 * with a coded error naming the tensor, and write nothing (svd/ties/dare used to reach the worker
 * and die in linalg.svd as E_INTERNAL; convert and cat copied NaN into the output).
 */

const STEM = "lora_unet_img_in"; // FLUX.1 img_in: Linear 64 -> 3072
const RANK = 2;

async function file(path: string, p: { dtype?: Dtype; bad?: { role: "down" | "up"; value: number }; alphaShape?: number[] }): Promise<string> {
  const next = rng(3);
  const dtype = p.dtype ?? "F32";
  const values = (n: number, role: "down" | "up") => {
    const v = Float32Array.from({ length: n }, () => next() - 0.5);
    if (p.bad?.role === role) v[n - 1] = p.bad.value;
    return encodeFromF32(dtype, v);
  };
  const alphaShape = p.alphaShape ?? [];
  const alphaN = alphaShape.reduce((a, b) => a * b, 1);
  const tensors: OutputTensor[] = [
    { name: `${STEM}.lora_down.weight`, dtype, shape: [RANK, 64], data: values(RANK * 64, "down") },
    { name: `${STEM}.lora_up.weight`, dtype, shape: [3072, RANK], data: values(3072 * RANK, "up") },
    { name: `${STEM}.alpha`, dtype: "F32", shape: alphaShape, data: encodeFromF32("F32", new Float32Array(alphaN).fill(1)) },
  ];
  await writeSafetensors({ path, tensors });
  return path;
}

async function outcome(stream: AsyncGenerator<unknown>, out: string): Promise<{ code: string; field?: string; wrote: boolean }> {
  try {
    await collectEvents(stream as never);
    return { code: "ok", wrote: existsSync(out) };
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    return { code: error.code, field: error.field, wrote: existsSync(out) };
  }
}

const OPERATIONS = [
  ...(["diffusers", "kohya", "comfy"] as const).map((to) => ({ name: `convert --to ${to}`, run: (a: string, _b: string, out: string) => convertLora({ input: a, output: out, to }) })),
  ...(["cat", "linear", "svd", "ties", "dare"] as const).map((method) => ({
    name: `merge --method ${method}`,
    // The broken file second: the check covers every input, not just the first.
    run: (a: string, b: string, out: string) => mergeLora({ inputs: [{ path: b, weight: 0.5 }, { path: a, weight: 0.5 }], output: out, method }),
  })),
];

describe("NaN and Inf in LoRA factors: listed by inspect, refused by convert and every merge method", () => {
  const cases = (["F32", "F16", "BF16"] as const).flatMap((dtype) =>
    (["down", "up"] as const).flatMap((role) => [NaN, Infinity, -Infinity].map((value) => ({ dtype, role, value }))),
  );
  it.each(cases)("$dtype $role = $value", async ({ dtype, role, value }) => {
    const dir = await tempDir();
    const bad = await file(join(dir, "bad.safetensors"), { dtype, bad: { role, value } });
    const good = await file(join(dir, "good.safetensors"), { dtype });
    const key = `${STEM}.lora_${role}.weight`;
    const report = await inspectLora({ path: bad });
    expect(report.nonFinite).toEqual([{ tensor: key, nan: Number.isNaN(value) ? 1 : 0, inf: Number.isNaN(value) ? 0 : 1 }]);
    for (const op of OPERATIONS) {
      const out = join(dir, `${op.name.replace(/\W+/g, "-")}.safetensors`);
      expect(await outcome(op.run(bad, good, out) as AsyncGenerator<unknown>, out), op.name).toEqual({ code: "E_NOT_SUPPORTED", field: `tensor "${key}"`, wrote: false });
    }
  });

  it("finite files pass the same check (F32, F16, BF16)", async () => {
    const dir = await tempDir();
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      const a = await file(join(dir, `${dtype}.safetensors`), { dtype });
      expect((await inspectLora({ path: a })).nonFinite).toEqual([]);
      const out = join(dir, `${dtype}.out.safetensors`);
      expect(await outcome(convertLora({ input: a, output: out, to: "diffusers" }), out)).toEqual({ code: "ok", wrote: true });
    }
  });
});

describe("an alpha that is not one number is refused, never replaced", () => {
  it.each([
    { shape: [], ok: true },
    { shape: [1], ok: true },
    { shape: [2], ok: false },
    { shape: [1, 1], ok: false },
    { shape: [2, 2], ok: false },
    { shape: [0], ok: false },
  ])("alpha shape $shape", async ({ shape, ok }) => {
    const dir = await tempDir();
    const a = await file(join(dir, "a.safetensors"), { alphaShape: shape });
    const b = await file(join(dir, "b.safetensors"), {});
    // A good alpha through the worker's merges is covered by merge.spec.ts; here only the in-process ones run.
    for (const op of OPERATIONS.filter((o) => !ok || !/(svd|ties|dare|linear)$/.test(o.name))) {
      const out = join(dir, `${op.name.replace(/\W+/g, "-")}.safetensors`);
      const r = await outcome(op.run(a, b, out) as AsyncGenerator<unknown>, out);
      expect(r, op.name).toEqual(ok ? { code: "ok", wrote: true } : { code: "E_NOT_SUPPORTED", field: `tensor "${STEM}.alpha"`, wrote: false });
    }
  });
});
