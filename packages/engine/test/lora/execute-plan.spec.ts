import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeToF32, encodeFromF32 } from "@loraspec/core/lora/dtype.js";
import type { PlannedTensor } from "@loraspec/core/lora/plan.js";
import { executePlan } from "@loraspec/engine/lora/execute-plan.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { writeSafetensors } from "@loraspec/engine/lora/write-safetensors.js";
import { tempDir } from "./helpers.js";

describe("executePlan", () => {
  it("zeros what no part covers, scales shared blocks once per use, and interleaves column blocks", async () => {
    const dir = await tempDir();
    const input = join(dir, "in.safetensors");
    const x = [1, 2, 3, 4, 5, 6]; // [3, 2]
    const y = [-1, -2, -3]; // [3, 1]
    await writeSafetensors({
      path: input,
      tensors: [
        { name: "x", dtype: "BF16", shape: [3, 2], data: encodeFromF32("BF16", new Float32Array(x)) },
        { name: "y", dtype: "BF16", shape: [3, 1], data: encodeFromF32("BF16", new Float32Array(y)) },
      ],
    });
    const src = await openSafetensors({ path: input });
    const half = { src: { input: 0, key: "x" }, factor: 0.5, row: 0, col: 0 };
    const plan: PlannedTensor[] = [
      // "a" is written first (sorted by name) and leaves non-zero bytes in the writer's buffer.
      { name: "a", dtype: "BF16", shape: [3, 2], op: { op: "place", parts: [{ src: { input: 0, key: "x" }, factor: 1, row: 0, col: 0 }] } },
      { name: "b", dtype: "BF16", shape: [5, 2], op: { op: "place", parts: [{ src: { input: 0, key: "x" }, factor: 1, row: 1, col: 0, srcRows: [1, 3] }] } },
      { name: "c", dtype: "BF16", shape: [3, 2], op: { op: "place", parts: [half] } },
      { name: "d", dtype: "BF16", shape: [3, 2], op: { op: "place", parts: [half] } },
      { name: "e", dtype: "BF16", shape: [3, 3], op: { op: "place", parts: [{ src: { input: 0, key: "x" }, factor: 1, row: 0, col: 0 }, { src: { input: 0, key: "y" }, factor: 3, row: 0, col: 2 }] } },
    ];
    // Four 4 MiB tensors of 0xff bytes go before "b": the writer's two 8 MiB buffers come round
    // again, so "b" lands on reused bytes.
    const pads = [1, 2, 3, 4].map((i) => ({ name: `a${i}`, dtype: "BF16" as const, shape: [2 << 20], data: { fill: (dest: Uint8Array) => void dest.fill(0xff) } }));
    const out = join(dir, "out.safetensors");
    await writeSafetensors({ path: out, tensors: [...executePlan({ plan, inputs: [src] }), ...pads] });
    await src.close();
    const f = await openSafetensors({ path: out });
    const values = async (name: string) => Array.from(decodeToF32("BF16", await f.readBytes(name)));
    expect(await values("a")).toEqual(x);
    expect(await values("b")).toEqual([0, 0, 3, 4, 5, 6, 0, 0, 0, 0]);
    expect(await values("c")).toEqual(x.map((v) => v / 2));
    expect(await values("d")).toEqual(x.map((v) => v / 2));
    expect(await values("e")).toEqual([1, 2, -3, 3, 4, -6, 5, 6, -9]);
    await f.close();
  });
});
