import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { TRAINER_SPEEDS, type TrainerSpeedRecord } from "@loraspec/core/knowledge/trainer-speeds.js";

/**
 * knowledge/trainer-speeds.ts is the browser-safe copy of what the peer benches wrote on the H200:
 * ai-toolkit's rows are lines of the jsonl their source names (bench/peer-aitoolkit.py), Kohya's
 * are read off the log their source names (its tqdm mean in the note, its module count).
 */
const root = fileURLToPath(new URL("../../../../", import.meta.url));
const read = (file: string) => readFileSync(`${root}${file}`, "utf8");
const fileIn = (source: string, ext: "jsonl" | "log") => {
  const file = new RegExp(`bench/data/\\S+\\.${ext}`).exec(source)?.[0];
  if (!file) throw new Error(`no bench/data .${ext} file in source "${source}"`);
  return file;
};
const MODEL: Record<string, string> = { "flux1-dev": "flux1", "flux2-klein-4b": "klein4b" };
type Line = { model?: string; steady_s_per_step?: number; peak_alloc_gib?: number; lora_modules?: string; train_rc?: number; first_grads?: { nonfinite: number }[] };
const round = (x: number | undefined, digits: number) => (x === undefined ? undefined : Number(x.toFixed(digits)));
const label = (r: TrainerSpeedRecord) => `${r.trainer} ${r.base} ${r.quantize}`;

describe("knowledge/trainer-speeds.ts agrees with bench/data", () => {
  const aitk = TRAINER_SPEEDS.filter((r) => r.trainer === "ai-toolkit");
  it.each(aitk.map((r) => [label(r), r] as const))("%s is a line of its jsonl", (_, row) => {
    const name = `${MODEL[row.base]}${row.quantize === "fp8" ? "-fp8" : ""}`;
    const same = read(fileIn(row.source, "jsonl"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Line)
      .filter((l) => l.model === name && l.train_rc === 0);
    expect(same, `${name} in ${fileIn(row.source, "jsonl")}`).toHaveLength(1);
    const [line] = same;
    expect(round(line!.steady_s_per_step, 3)).toBe(row.secondsPerStep);
    expect(round(line!.peak_alloc_gib, 1)).toBe(row.peakAllocGib);
    expect(line!.lora_modules).toBe(`create LoRA for U-Net: ${row.modules} modules.`);
    // a timing needs finite gradients where the bench kept them (the NaN rows of 2026-12-02 were not)
    for (const g of line!.first_grads ?? []) expect(g.nonfinite).toBe(0);
  });

  it.each(aitk.map((r) => [label(r), r] as const))("%s names the log of that run", (_, row) => {
    expect(read(fileIn(row.source, "log"))).toContain(`create LoRA for U-Net: ${row.modules} modules.`);
  });

  const kohya = TRAINER_SPEEDS.filter((r) => r.trainer === "kohya");
  it.each(kohya.map((r) => [label(r), r] as const))("%s: the log's tqdm mean and module count", (_, row) => {
    const sections = read(fileIn(row.source, "log")).split(/^## /m);
    const section = sections.find((s) => s.startsWith(row.base === "sdxl" ? "sdxl" : "flux"))!;
    const rate = [...section.matchAll(/60\/60 \[[^\]]*?([\d.]+)(s\/it|it\/s)/g)].at(-1)!;
    const sPerStep = rate[2] === "s/it" ? Number(rate[1]) : 1 / Number(rate[1]);
    expect(row.note).toBe(`tqdm mean ${sPerStep.toFixed(2)}`);
    expect(section.replace(/\s+/g, " ")).toContain(`${row.modules} modules.`);
    // steady (epoch timestamps) is never slower than the tqdm mean, which includes the first steps
    expect(row.secondsPerStep).toBeLessThanOrEqual(sPerStep);
  });
});
