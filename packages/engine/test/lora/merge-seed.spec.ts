import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { MERGE_METHODS, type MergeMethod } from "@loraspec/core/lora/options.js";
import { mergeLora } from "@loraspec/engine/lora/merge-lora.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { buildLora, HAS_PYTHON, tempDir } from "./helpers.js";

/**
 * The "loraspec.merge" record names the seed exactly for the methods whose result depends on it
 * (ties: top-k sample and randomized torch.svd_lowrank; dare: the masks), and null for the others.
 * Before, ties recorded null though two seeds gave two different files, so the record could not
 * reproduce it. svd is deterministic (QR + full SVD): --seed is refused there, as for cat/linear.
 */

const SEEDED: MergeMethod[] = ["ties", "dare"];

async function fixtures() {
  const dir = await tempDir();
  const a = join(dir, "a.safetensors"), b = join(dir, "b.safetensors");
  // img_in is 3072 x 64: at rank 1, ties factors with the randomized SVD ((1 + 10) * 4 < 64).
  const pick = (m: { native: string }) => m.native === "img_in";
  await buildLora({ path: a, arch: "flux1", format: "kohya", pick, rank: 4, seed: 1 });
  await buildLora({ path: b, arch: "flux1", format: "kohya", pick, rank: 4, seed: 2 });
  return { dir, a, b };
}

const flags = (method: MergeMethod, seed: number) => ({
  ...(method === "cat" || method === "linear" ? {} : { rank: 1 }),
  ...(method === "ties" || method === "dare" ? { density: 0.5 } : {}),
  ...(SEEDED.includes(method) ? { seed } : {}),
});

describe.runIf(HAS_PYTHON)("merge records the seed for exactly the methods that use it", () => {
  it.each([...MERGE_METHODS])("%s", async (method) => {
    const { dir, a, b } = await fixtures();
    const run = async (seed: number, name = `m${seed}`) => {
      const out = join(dir, `${name}.safetensors`);
      await collectEvents(mergeLora({ inputs: [{ path: a, weight: 0.6 }, { path: b, weight: 0.4 }], output: out, method, ...flags(method, seed) }));
      const f = await openSafetensors({ path: out });
      const record = JSON.parse(f.metadata["loraspec.merge"]!) as { seed: number | null };
      await f.close();
      return { record, bytes: await readFile(out) };
    };
    const first = await run(3);
    expect(first.record.seed).toBe(SEEDED.includes(method) ? 3 : null);
    if (SEEDED.includes(method)) {
      // The seed matters: another seed, another file; the same seed, the same file.
      const other = await run(4);
      expect(other.record.seed).toBe(4);
      expect(other.bytes.equals(first.bytes)).toBe(false);
      expect((await run(3, "again")).bytes.equals(first.bytes)).toBe(true);
    } else if (method !== "cat") {
      const error = await collectEvents(mergeLora({ inputs: [{ path: a, weight: 0.6 }, { path: b, weight: 0.4 }], output: join(dir, "s.safetensors"), method, ...flags(method, 0), seed: 5 })).catch((e: unknown) => e);
      expect(isLoraspecError(error) && [error.code, error.field]).toEqual(["E_USAGE", "--seed"]);
    }
  });
});
