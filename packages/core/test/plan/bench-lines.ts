import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** One JSON line of a bench/gpu-speed.py file (bench/data/*.jsonl): a row, or the run's header (card, context). */
export type BenchLine = {
  model?: string;
  config?: string;
  batch?: number;
  /** true / false, or the selective policy the row ran ("selective": matmul+attention; "selective-attention": the product's). */
  gradient_checkpointing?: boolean | string;
  levers?: string[];
  s_per_step?: number;
  peak_alloc_gib?: number;
  warmup_s?: number;
  context_gib?: number;
  attention?: string;
  targets?: string;
};

const root = fileURLToPath(new URL("../../../../", import.meta.url));

/** The JSON lines of the bench/data file a record's `source` names. */
export function benchLines(source: string): BenchLine[] {
  const file = /bench\/data\/\S+\.jsonl/.exec(source)?.[0];
  if (!file) throw new Error(`no bench/data file in source "${source}"`);
  // Some runs' files hold the bench's stderr too (FA4's CuTe DSL warnings, 2026-12-05): only the JSON lines are rows.
  return readFileSync(`${root}${file}`, "utf8").trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as BenchLine);
}
