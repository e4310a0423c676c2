import { describe, expect, it } from "vitest";
import { COMPILE_WARMUP_S, CUDA_CONTEXT, TRAIN_SPEEDS, TRAIN_SPEED_SOURCE_ALL_LINEAR_FA4, TRAIN_SPEED_SOURCE_CKPT_FA4_LORA_BF16, TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4, type TrainSpeedRecord } from "@loraspec/core/knowledge/train-speed.js";
import { benchLines as lines } from "./bench-lines.js";

/**
 * knowledge/train-speed.ts is the browser-safe copy of bench/data/*.jsonl (what bench/gpu-speed.py
 * wrote on the H200): every row must be a line of the file its source names, to the digits shown.
 */
const MODEL: Record<string, string> = { sdxl: "sdxl", "flux1-dev": "flux1", "flux2-klein-4b": "klein4b", "flux2-klein-9b": "klein9b" };
/** The bench line's gradient_checkpointing for a record: the product's selective policy ran as the bench's "selective-attention". */
const benchCkpt = (r: TrainSpeedRecord) => (r.checkpointingMode === "selective" ? "selective-attention" : r.gradientCheckpointing);
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
        l.gradient_checkpointing === benchCkpt(row) &&
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

  // Issue 22's 2026-12-06 checkpointing rows: every line is a row but the matmul+attention policy's (row 44, a bench record
  // only: not the product's selective), and every selective record is the product's policy as measured that day.
  it("every line of the 2026-12-06 checkpointing file is a row but the retired matmul+attention policy's", () => {
    const rows = TRAIN_SPEEDS.filter((r) => r.source === TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4);
    const file = lines(TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4).filter((l) => l.model !== undefined);
    expect(file.map((l) => l.gradient_checkpointing)).toEqual([true, true, "selective-attention", "selective"]);
    const product = file.filter((l) => l.gradient_checkpointing !== "selective");
    expect(rows.map((r) => [r.config, benchCkpt(r), r.secondsPerStep, r.asOf])).toEqual(product.map((l) => [l.config, l.gradient_checkpointing, round(l.s_per_step, 3), "2026-12-06"]));
    const selective = TRAIN_SPEEDS.filter((r) => r.checkpointingMode === "selective");
    expect(selective.map((r) => [r.base, r.attention, r.secondsPerStep, r.peakAllocGib, r.source])).toEqual([["flux1-dev", "fa4", 0.345, 26.24, TRAIN_SPEED_SOURCE_CKPT_SELECTIVE_FA4]]);
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
