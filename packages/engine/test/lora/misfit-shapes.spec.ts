import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import type { ArchId } from "@loraspec/core/lora/architectures.js";
import { encodeFromF32 } from "@loraspec/core/lora/dtype.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { inspectLora } from "@loraspec/engine/lora/inspect-lora.js";
import { mergeLora } from "@loraspec/engine/lora/merge-lora.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { writeSafetensors, type OutputTensor } from "@loraspec/engine/lora/write-safetensors.js";
import { buildLora, tempDir } from "./helpers.js";

/**
 * A module named like a base model's whose factors do not fit it (up and down of different ranks,
 * the wrong width: a broken file, or one for another base sharing the names) is explained by its
 * shapes everywhere: inspect lists why, convert and merge say E_LORA_SHAPE_MISMATCH with the shapes
 * when nothing else places, and E_LORA_UNUSED_KEYS with the shapes when other modules do. Before,
 * inspect said "not a module of any known base model" and convert/merge "cannot tell which base
 * model this LoRA is for", for a file whose every name was SDXL's.
 */

const MODULES: Record<string, { good: string; bad: string }> = {
  sdxl: { good: "input_blocks.4.1.transformer_blocks.0.attn1.to_k", bad: "input_blocks.4.1.transformer_blocks.0.attn1.to_q" },
  flux1: { good: "single_blocks.0.linear2", bad: "double_blocks.0.img_attn.proj" },
};

const MUTATIONS = {
  // up [out, r + 1] against down [r, in]
  rank: { role: "up", reshape: (s: number[]) => [s[0]!, s[1]! + 1], why: /up has rank \d+, down \d+/ },
  // up [2 out, r]
  rows: { role: "up", reshape: (s: number[]) => [s[0]! * 2, s[1]!], why: /up has \d+ rows, the module \d+/ },
  // down [r, in + 8]
  cols: { role: "down", reshape: (s: number[]) => [s[0]!, s[1]! + 8], why: /down has \d+ columns, the module \d+/ },
} as const;

async function tensorsOf(path: string, mutate?: (typeof MUTATIONS)[keyof typeof MUTATIONS]): Promise<OutputTensor[]> {
  const f = await openSafetensors({ path });
  try {
    const out: OutputTensor[] = [];
    for (const t of f.tensors) {
      const role = /lora_(down|A)\./.test(t.name) ? "down" : /lora_(up|B)\./.test(t.name) ? "up" : "alpha";
      if (mutate && role === mutate.role) {
        const shape = mutate.reshape(t.shape);
        out.push({ name: t.name, dtype: "F32", shape, data: encodeFromF32("F32", new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01)) });
      } else out.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await f.readBytes(t.name) });
    }
    return out;
  } finally {
    await f.close();
  }
}

async function codeAndMessage(stream: AsyncGenerator<unknown>): Promise<[string, string]> {
  try {
    await collectEvents(stream as never);
    return ["ok", ""];
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    return [error.code, error.message];
  }
}

const cases = (["sdxl", "flux1"] as const).flatMap((arch) =>
  (["kohya", "diffusers"] as const).flatMap((format) =>
    (Object.keys(MUTATIONS) as (keyof typeof MUTATIONS)[]).flatMap((mutation) => [true, false].map((alone) => ({ arch, format, mutation, alone }))),
  ),
);

describe("factors that do not fit a module are explained by their shapes (inspect, convert, merge)", () => {
  it.each(cases)("$arch $format: $mutation (alone: $alone)", async ({ arch, format, mutation, alone }) => {
    const dir = await tempDir();
    const m = MUTATIONS[mutation];
    const build = (path: string, native: string) => buildLora({ path, arch: arch as ArchId, format, pick: (s) => s.native === native, rank: 2, alpha: () => 1 });
    await build(join(dir, "good.safetensors"), MODULES[arch]!.good);
    await build(join(dir, "bad-part.safetensors"), MODULES[arch]!.bad);
    const tensors = [...(alone ? [] : await tensorsOf(join(dir, "good.safetensors"))), ...(await tensorsOf(join(dir, "bad-part.safetensors"), m))];
    const file = join(dir, "file.safetensors");
    await writeSafetensors({ path: file, tensors });

    const report = await inspectLora({ path: file });
    expect(report.misfits).toHaveLength(1);
    expect(report.misfits[0]).toMatch(m.why);

    const [code, message] = await codeAndMessage(convertLora({ input: file, output: join(dir, "out.safetensors"), to: format === "kohya" ? "diffusers" : "kohya" }));
    expect(code).toBe(alone ? "E_LORA_SHAPE_MISMATCH" : "E_LORA_UNUSED_KEYS");
    expect(message).toMatch(m.why);
    expect(message).not.toContain("cannot tell which base model");

    const [mcode, mmessage] = await codeAndMessage(mergeLora({ inputs: [{ path: join(dir, "good.safetensors"), weight: 0.5 }, { path: file, weight: 0.5 }], output: join(dir, "m.safetensors"), method: "cat" }));
    expect(mcode).toBe(alone ? "E_LORA_SHAPE_MISMATCH" : "E_LORA_UNUSED_KEYS");
    expect(mmessage).toMatch(m.why);
  });

  it("a file whose names match no base model is still 'cannot tell which base model'", async () => {
    const dir = await tempDir();
    const file = join(dir, "x.safetensors");
    await writeSafetensors({ path: file, tensors: [{ name: "lora_unet_nothing_here.lora_down.weight", dtype: "F32", shape: [2, 8], data: new Uint8Array(64) }, { name: "lora_unet_nothing_here.lora_up.weight", dtype: "F32", shape: [8, 2], data: new Uint8Array(64) }] });
    expect((await inspectLora({ path: file })).misfits).toEqual([]);
    expect((await codeAndMessage(convertLora({ input: file, output: join(dir, "o.safetensors"), to: "kohya" })))[0]).toBe("E_LORA_FORMAT_UNKNOWN");
  });
});
