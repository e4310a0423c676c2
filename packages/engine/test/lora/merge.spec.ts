import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents, type LoraspecEvent } from "@loraspec/core/events.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { mergeLora, parseMergeInput, type MergeMethod } from "@loraspec/engine/lora/merge-lora.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { buildLora, fluxSubset, HAS_PYTHON, oracle, tempDir } from "./helpers.js";

const alpha = (_m: unknown, rank: number, i: number) => [1, 2 * rank, rank, undefined][i % 4];

describe("parseMergeInput", () => {
  it.each([
    ["a.safetensors:0.5", { path: "a.safetensors", weight: 0.5 }],
    ["a.safetensors", { path: "a.safetensors", weight: 1 }],
    ["dir:x/a.safetensors:-0.25", { path: "dir:x/a.safetensors", weight: -0.25 }],
    ["C:1", { path: "C:1", weight: 1 }],
  ])("%s", (arg, want) => expect(parseMergeInput(arg)).toEqual(want));
});

describe.runIf(HAS_PYTHON)("merge", () => {
  it("cat is the exact weighted sum of deltas, across formats and ranks; metadata records inputs", async () => {
    const dir = await tempDir();
    const a = join(dir, "a.safetensors"), b = join(dir, "b.safetensors"), c = join(dir, "c.safetensors"), out = join(dir, "m.safetensors");
    await buildLora({ path: a, arch: "flux1", format: "kohya", pick: fluxSubset, rank: 4, alpha, seed: 1 });
    // b covers fewer modules and has another rank; c is b in diffusers format (fused qkv split).
    await buildLora({ path: b, arch: "flux1", format: "kohya", pick: (m) => fluxSubset(m) && /^(double_blocks\.0|single_blocks\.0)\./.test(m.native), rank: 2, alpha, seed: 2 });
    await collectEvents(convertLora({ input: b, output: c, to: "diffusers" }));
    const events = await collectEvents(mergeLora({ inputs: [{ path: a, weight: 0.5 }, { path: c, weight: 0.3 }], output: out, method: "cat", to: "kohya" }));
    expect(events.filter((e) => e.type === "warning")).toEqual([]);
    const r = oracle("convert_oracle.py", ["weighted", `${a}:0.5,${b}:0.3`, out]);
    expect([r.missing_in_ours, r.extra_in_ours]).toEqual([[], []]);
    expect(r.max_rel_err).toBeLessThan(1e-6);
    const f = await openSafetensors({ path: out });
    const meta = JSON.parse(f.metadata["loraspec.merge"]!);
    expect(meta.method).toBe("cat");
    expect(meta.inputs.map((i: { weight: number }) => i.weight)).toEqual([0.5, 0.3]);
    expect(f.metadata["modelspec.merged_from"]).toBe("a.safetensors, c.safetensors");
    await f.close();
  });

  it("warns above 3 adapters and above combined weight 1.0 (knowledge-base stacking rule)", async () => {
    const dir = await tempDir();
    const a = join(dir, "a.safetensors");
    await buildLora({ path: a, arch: "flux1", format: "kohya", pick: (m) => m.native === "img_in", rank: 2 });
    const events: LoraspecEvent[] = await collectEvents(mergeLora({ inputs: [0.4, 0.3, 0.2, 0.2].map((weight) => ({ path: a, weight })), output: join(dir, "m.safetensors"), method: "cat" }));
    expect(events.filter((e) => e.type === "warning").map((e) => e.type === "warning" && e.code)).toEqual(["W_STACK_COUNT", "W_STACK_WEIGHT"]);
  });

  it("refuses inputs with keys it cannot place (E_LORA_UNUSED_KEYS), unlike sd-scripts #1612", async () => {
    const dir = await tempDir();
    const a = join(dir, "a.safetensors"), b = join(dir, "b.safetensors");
    await buildLora({ path: a, arch: "flux1", format: "kohya", pick: (m) => m.native === "img_in", rank: 2 });
    await buildLora({
      path: b, arch: "flux1", format: "kohya", pick: (m) => m.native === "img_in", rank: 2,
      extra: [{ name: "lora_unet_img_in.hada_w1_a", dtype: "F32", shape: [3072, 2], data: new Uint8Array(3072 * 8) }],
    });
    const error = await collectEvents(mergeLora({ inputs: [{ path: a, weight: 0.5 }, { path: b, weight: 0.5 }], output: join(dir, "m.safetensors"), method: "svd" })).catch((e) => e);
    expect(error.code).toBe("E_LORA_UNUSED_KEYS");
    expect(error.details.keys).toContain("lora_unet_img_in.hada_w1_a");
  });

  // Each method gets only the flags it reads (the others are refused: see options.spec.ts).
  const flagsFor = (method: MergeMethod) => (method === "linear" ? {} : method === "svd" ? { rank: 8 } : { rank: 8, density: 0.5, seed: 1 });
  const methods: Array<[MergeMethod, number]> = [["svd", 1e-6], ["ties", 1], ["dare", 1], ["linear", 1]];
  it.each(methods)("%s runs in the worker and writes a LoRA of the requested rank in the requested format", async (method, tol) => {
    const dir = await tempDir();
    const a = join(dir, "a.safetensors"), b = join(dir, "b.safetensors"), out = join(dir, "m.safetensors");
    const pick = (m: { native: string }) => /^input_blocks\.4\.1\.transformer_blocks\.0\.attn1\./.test(m.native);
    await buildLora({ path: a, arch: "sdxl", format: "kohya", pick, rank: 4, alpha, seed: 3 });
    await buildLora({ path: b, arch: "sdxl", format: "diffusers", pick, rank: 4, seed: 4 });
    const events = await collectEvents(mergeLora({ inputs: [{ path: a, weight: 0.6 }, { path: b, weight: 0.4 }], output: out, method, to: "kohya", ...flagsFor(method) }));
    expect(events.some((e) => e.type === "progress" && e.task === "merge")).toBe(true);
    const f = await openSafetensors({ path: out });
    // linear is peft's factor average: equal ranks in, the same rank out.
    expect(f.tensor("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight").shape).toEqual([method === "linear" ? 4 : 8, 640]);
    await f.close();
    if (method === "svd") {
      // rank 8 >= 4 + 4: the SVD re-factoring is exact.
      const bk = join(dir, "bk.safetensors");
      await collectEvents(convertLora({ input: b, output: bk, to: "kohya" }));
      const r = oracle("convert_oracle.py", ["weighted", `${a}:0.6,${bk}:0.4`, out]);
      expect(r.max_rel_err).toBeLessThan(tol);
    }
  });
});
