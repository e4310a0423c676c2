import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { COMPILE_WARMUP_S, CUDA_CONTEXT, TRAIN_SPEEDS } from "@loraspec/core/knowledge/train-speed.js";

/**
 * knowledge/train-speed.ts is the browser-safe copy of bench/data/*.jsonl (what bench/gpu-speed.py
 * wrote on the H200): every row must be a line of the file its source names, to the digits shown.
 */
const root = fileURLToPath(new URL("../../../../", import.meta.url));
const MODEL: Record<string, string> = { sdxl: "sdxl", "flux1-dev": "flux1", "flux2-klein-4b": "klein4b", "flux2-klein-9b": "klein9b" };
type Line = { model?: string; config?: string; batch?: number; gradient_checkpointing?: boolean | string; levers?: string[]; s_per_step?: number; peak_alloc_gib?: number; warmup_s?: number; context_gib?: number; attention?: string };

function lines(source: string): Line[] {
  const file = /bench\/data\/\S+\.jsonl/.exec(source)?.[0];
  if (!file) throw new Error(`no bench/data file in source "${source}"`);
  return readFileSync(`${root}${file}`, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Line);
}
const round = (x: number | undefined, digits: number) => (x === undefined ? undefined : Number(x.toFixed(digits)));

describe("knowledge/train-speed.ts agrees with bench/data", () => {
  it.each(TRAIN_SPEEDS.map((r) => [`${r.base} ${r.config} batch ${r.batch}${r.gradientCheckpointing ? " ckpt" : ""}${r.attention ? ` ${r.attention}` : ""}`, r] as const))("%s", (_, row) => {
    const same = lines(row.source).filter(
      (l) =>
        l.model === MODEL[row.base] &&
        l.config === row.config &&
        (l.attention ?? "sdpa") === (row.attention ?? "sdpa") &&
        l.batch === row.batch &&
        l.gradient_checkpointing === (row.checkpointingMode ?? row.gradientCheckpointing) &&
        [...(l.levers ?? [])].sort().join() === [...row.levers].sort().join(),
    );
    if (row.peakAllocGib === undefined) {
      expect(row.note).toMatch(/lost/); // the line is missing from the file: the row says so
      return;
    }
    const numbers = same.map((l) => ({ s: round(l.s_per_step, 3), peak: round(l.peak_alloc_gib, 2), warm: round(l.warmup_s, 1) }));
    expect(numbers).toContainEqual({ s: row.secondsPerStep, peak: row.peakAllocGib, warm: row.warmupS });
  });

  it("the CUDA context and the first-compile warm-ups are the file's", () => {
    const [header] = lines(CUDA_CONTEXT.source);
    expect(round(header?.context_gib, 2)).toBe(CUDA_CONTEXT.gib);
    for (const [base, warm] of Object.entries(COMPILE_WARMUP_S)) {
      const compiled = TRAIN_SPEEDS.filter((r) => r.base === base && r.levers.includes("compile") && r.source === warm!.source && r.warmupS !== undefined);
      expect(compiled.map((r) => Math.round(r.warmupS!)), base).toContain(warm!.seconds);
    }
  });
});
