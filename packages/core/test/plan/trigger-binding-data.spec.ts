import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { TRIGGER_BINDING } from "@loraspec/core/knowledge/recipes.js";

/**
 * knowledge/recipes.ts TRIGGER_BINDING states toy-world evidence: it must be what the H200's bind-probe reports and
 * GPU test log in bench/data say, for the recipe worker/toyworld/bind_probe.py's BINDING names.
 */
const root = fileURLToPath(new URL("../../../../", import.meta.url));
const GPU = `${root}bench/data/toy-flux-bind-probe-gpu-2026-12-04/`;
type Shares = { with: number; without: number; night: number };
type Report = { recipe: string; steps: number; seed: number; class_count: number; sample_seeds: number[]; lora: Shares };

const binding = (() => {
  const src = readFileSync(`${root}worker/toyworld/bind_probe.py`, "utf8");
  const m = /^BINDING = \{"recipe": "([^"]+)", "learning_rate": ([\d.e-]+), "steps": (\d+), "class_count": (\d+)\}$/m.exec(src);
  if (!m) throw new Error("no BINDING line in worker/toyworld/bind_probe.py");
  return { recipe: m[1]!, learningRate: Number(m[2]), steps: Number(m[3]), classCount: Number(m[4]) };
})();
const characterImages = readdirSync(`${root}examples/toyworld/character`).filter((f) => f.endsWith(".png")).length;

describe("TRIGGER_BINDING agrees with bench/data and bind_probe.BINDING", () => {
  it("the class images per dataset image are BINDING's", () => {
    expect(characterImages).toBe(20);
    expect(binding.classCount / characterImages).toBe(TRIGGER_BINDING.classImagesPerImage);
  });

  it("the bind-probe reports of BINDING's recipe, both training seeds: 24/24 with, 0/24 without, 9/9 on night", () => {
    const reports = readdirSync(GPU)
      .filter((f) => f.endsWith(".json"))
      .map((f) => JSON.parse(readFileSync(`${GPU}${f}`, "utf8")) as Report)
      .filter((r) => r.recipe === binding.recipe && r.steps === binding.steps && r.class_count === binding.classCount);
    expect(reports.map((r) => r.seed).sort()).toEqual([1, 2]);
    for (const r of reports) {
      const n = r.sample_seeds.length * 8;
      expect(n).toBe(24);
      expect([Math.round(r.lora.with * n), Math.round(r.lora.without * n), r.lora.night]).toEqual([24, 0, 1]);
    }
    expect(TRIGGER_BINDING.evidence).toMatch(/24\/24 with the trigger, 0-1\/24 without, 9\/9 on a background the dataset lacks, two training seeds/);
  });

  it("the GPU test's run of it: both seeds within the evidence (0-1 of 24 without)", () => {
    const log = readFileSync(`${GPU}gputest3.log`, "utf8");
    const rows = [...log.matchAll(/training seed (\d): with trigger ([\d.]+), without ([\d.]+), on night \(novel\) ([\d.]+)/g)];
    expect(rows.map((m) => m[1])).toEqual(["1", "2"]);
    for (const m of rows) {
      expect(Number(m[2])).toBeGreaterThanOrEqual(0.95); // 23 or 24 of 24
      expect(Math.round(Number(m[3]) * 24)).toBeLessThanOrEqual(1);
      expect(Number(m[4])).toBe(1);
    }
    expect(log).toMatch(/2 passed, 2 xfailed/);
  });
});
