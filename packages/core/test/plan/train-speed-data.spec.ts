import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { COMPILE_WARMUP_S, CUDA_CONTEXT, TRAIN_SPEEDS, TRAIN_SPEED_SOURCE_ALL_LINEAR_FA4, TRAIN_SPEED_SOURCE_CKPT_FA4_LORA_BF16 } from "@loraspec/core/knowledge/train-speed.js";

/**
 * knowledge/train-speed.ts is the browser-safe copy of bench/data/*.jsonl (what bench/gpu-speed.py
 * wrote on the H200): every row must be a line of the file its source names, to the digits shown.
 */
const root = fileURLToPath(new URL("../../../../", import.meta.url));
const MODEL: Record<string, string> = { sdxl: "sdxl", "flux1-dev": "flux1", "flux2-klein-4b": "klein4b", "flux2-klein-9b": "klein9b" };
type Line = { model?: string; config?: string; batch?: number; gradient_checkpointing?: boolean | string; levers?: string[]; s_per_step?: number; peak_alloc_gib?: number; warmup_s?: number; context_gib?: number; attention?: string; targets?: string };

function lines(source: string): Line[] {
  const file = /bench\/data\/\S+\.jsonl/.exec(source)?.[0];
  if (!file) throw new Error(`no bench/data file in source "${source}"`);
  // Some runs' files hold the bench's stderr too (FA4's CuTe DSL warnings, 2026-12-05): only the JSON lines are rows.
  return readFileSync(`${root}${file}`, "utf8").trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Line);
}
const round = (x: number | undefined, digits: number) => (x === undefined ? undefined : Number(x.toFixed(digits)));

describe("knowledge/train-speed.ts agrees with bench/data", () => {
  it.each(TRAIN_SPEEDS.map((r) => [`${r.base} ${r.config} batch ${r.batch}${r.gradientCheckpointing ? " ckpt" : ""}${r.attention ? ` ${r.attention}` : ""}${r.targets ? ` ${r.targets}` : ""} (${r.asOf})`, r] as const))("%s", (_, row) => {
    const same = lines(row.source).filter(
      (l) =>
        l.model === MODEL[row.base] &&
        l.config === row.config &&
        (l.attention ?? "sdpa") === (row.attention ?? "sdpa") &&
        (l.targets ?? "attention") === (row.targets ?? "attention") &&
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

  // Issue 22's 2026-12-05 rows (every linear with FA4 in one lease with the peers; FLUX.1 checkpointed with FA4): every line is a row.
  it.each([TRAIN_SPEED_SOURCE_ALL_LINEAR_FA4, TRAIN_SPEED_SOURCE_CKPT_FA4_LORA_BF16])("every line of %s is a row", (source) => {
    const rows = TRAIN_SPEEDS.filter((r) => r.source === source);
    const file = lines(source).filter((l) => l.model !== undefined);
    expect(file.length).toBeGreaterThan(0);
    expect(rows).toHaveLength(file.length);
    for (const l of file) {
      const row = rows.find((r) => MODEL[r.base] === l.model && r.config === l.config && (r.targets ?? "attention") === l.targets && (r.attention ?? "sdpa") === l.attention);
      expect(row, `${l.model} ${l.config}`).toBeDefined();
      expect(row!.asOf).toBe("2026-12-05");
      expect(row!.secondsPerStep).toBe(round(l.s_per_step, 3));
    }
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
