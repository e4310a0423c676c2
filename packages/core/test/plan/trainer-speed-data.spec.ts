import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { TRAINER_SPEEDS, type TrainerSpeedRecord } from "@loraspec/core/knowledge/trainer-speeds.js";

/**
 * knowledge/trainer-speeds.ts is the browser-safe copy of what the peer benches wrote on the H200:
 * every row is a line of the jsonl its source names (bench/peer-aitoolkit.py, bench/peer-kohya.py),
 * its module count in the log its source names, the trainer's own final rate (tqdm's) in its note.
 */
const root = fileURLToPath(new URL("../../../../", import.meta.url));
const read = (file: string) => readFileSync(`${root}${file}`, "utf8");
const fileIn = (source: string, ext: "jsonl" | "log") => {
  const file = new RegExp(`bench/data/\\S+\\.${ext}`).exec(source)?.[0];
  if (!file) throw new Error(`no bench/data .${ext} file in source "${source}"`);
  return file;
};
const MODEL: Record<string, string> = { "flux1-dev": "flux1", "flux2-klein-4b": "klein4b", sdxl: "sdxl" };
type Line = {
  trainer?: string;
  model?: string;
  steady_s_per_step?: number;
  median_s_per_step?: number;
  aitk_final_s_per_it?: number;
  tqdm_final_s_per_it?: number;
  peak_alloc_gib?: number;
  lora_modules?: string | string[];
  train_rc?: number;
  first_grads?: { nonfinite: number }[];
  avr_loss_nan?: number;
};
const round = (x: number | undefined, digits: number) => (x === undefined ? undefined : Number(x.toFixed(digits)));
const label = (r: TrainerSpeedRecord) => `${r.trainer} ${r.base} ${r.quantize}`;
/** The trainer's log line for the LoRA it built (Kohya: the U-Net's, or FLUX's "all blocks"). */
const modulesLine = (r: TrainerSpeedRecord) => (r.trainer === "kohya" && r.base !== "sdxl" ? `FLUX all blocks: ${r.modules}` : `U-Net: ${r.modules}`);

describe("knowledge/trainer-speeds.ts agrees with bench/data", () => {
  it.each(TRAINER_SPEEDS.map((r) => [label(r), r] as const))("%s is a line of its jsonl", (_, row) => {
    const name = `${MODEL[row.base]}${row.quantize === "fp8" ? "-fp8" : ""}`;
    const same = read(fileIn(row.source, "jsonl"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Line)
      .filter((l) => l.model === name && l.train_rc === 0 && (l.trainer ?? "ai-toolkit") === row.trainer);
    expect(same, `${name} in ${fileIn(row.source, "jsonl")}`).toHaveLength(1);
    const [line] = same;
    expect(round(line!.steady_s_per_step, 3)).toBe(row.secondsPerStep);
    expect(round(line!.peak_alloc_gib, 1)).toBe(row.peakAllocGib);
    const modules = Array.isArray(line!.lora_modules) ? line!.lora_modules : [line!.lora_modules];
    expect(modules.some((m) => m?.includes(modulesLine(row)))).toBe(true);
    expect(row.note).toMatch(new RegExp(`^median ${round(line!.median_s_per_step, 3)}\\b`));
    const final = line!.aitk_final_s_per_it ?? line!.tqdm_final_s_per_it;
    expect(row.note).toContain(`rate ${final!.toFixed(2)} s/it`);
    // a timing needs finite gradients (ai-toolkit) or losses (Kohya) where the bench kept them (the NaN rows of 2026-12-02 were not)
    for (const g of line!.first_grads ?? []) expect(g.nonfinite).toBe(0);
    expect(line!.avr_loss_nan ?? 0).toBe(0);
  });

  it.each(TRAINER_SPEEDS.map((r) => [label(r), r] as const))("%s names the log of that run", (_, row) => {
    const log = read(fileIn(row.source, "log"));
    expect(log).toMatch(new RegExp(`create LoRA for ${modulesLine(row)} modules\\.`));
    // Kohya: tqdm's last bar of the log is the final rate the note gives, and the steady figure is never slower
    // (tqdm's mean includes the first steps)
    if (row.trainer !== "kohya") return;
    const rate = [...log.matchAll(/60\/60 \[[^\]]*?([\d.]+)(s\/it|it\/s)/g)].at(-1)!;
    const sPerStep = rate[2] === "s/it" ? Number(rate[1]) : 1 / Number(rate[1]);
    expect(row.note).toContain(`rate ${sPerStep.toFixed(2)} s/it`);
    expect(row.secondsPerStep).toBeLessThanOrEqual(sPerStep);
  });
});
