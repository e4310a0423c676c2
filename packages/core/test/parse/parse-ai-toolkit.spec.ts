import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { parseAiToolkitLine, type AiToolkitParseState } from "@loraspec/core/parse/parse-ai-toolkit-line.js";
import { splitLines } from "@loraspec/core/parse/split-lines.js";

const text = readFileSync(new URL("./fixtures/ai-toolkit/zimage-excerpt.log", import.meta.url), "utf8");

function parseAll(state: AiToolkitParseState = {}): LoraspecEvent[] {
  return splitLines(text).flatMap((line) => parseAiToolkitLine(line, state));
}

describe("parseAiToolkitLine", () => {
  it("reads step, loss and lr from the training bar's postfix", () => {
    const losses = parseAll().filter((e) => e.type === "loss");
    expect(losses.map((e) => e.type === "loss" && [e.step, e.loss, e.lr])).toEqual([
      [29, 0.4167, 1e-4],
      [59, 0.4675, 1e-4],
      [89, 0.3816, 1e-4],
      [119, 0.3752, 1e-4],
      [149, Number.NaN, 1e-4],
      [209, 0.4357, 1e-4],
    ]);
  });

  it("tells sample bars from the training bar", () => {
    const progress = parseAll({ jobName: "zimage_a1_ut" }).filter((e) => e.type === "progress");
    expect(progress.filter((p) => p.type === "progress" && p.task === "sample")).toHaveLength(3);
    expect(progress.filter((p) => p.type === "progress" && p.task === "train").at(-1)).toMatchObject({ current: 209, total: 20000 });
    const first = progress.find((p) => p.type === "progress" && p.task === "train");
    expect(first).toMatchObject({ current: 0, total: 20000 });
  });

  it("maps banners to checkpoint, warning, phase and error events", () => {
    const events = parseAll();
    expect(events.filter((e) => e.type === "checkpoint")).toEqual([
      { type: "checkpoint", step: 150, path: "output/zimage_a1_ut/zimage_a1_ut_000000150.safetensors" },
    ]);
    expect(events.filter((e) => e.type === "warning").map((e) => e.type === "warning" && e.code)).toEqual(["OOM_SKIPPED_BATCH", "LOSS_NOT_FINITE"]);
    expect(events.filter((e) => e.type === "phase").map((e) => e.type === "phase" && e.name)).toEqual(["sample-baseline"]);
    expect(events.filter((e) => e.type === "error").map((e) => e.type === "error" && e.code)).toEqual(["E_OUT_OF_MEMORY"]);
  });

  it.each([
    ["OOM during training step 3 times in a row, aborting training", "E_OUT_OF_MEMORY"],
    ["Error running job: No images found in dataset folder", "E_TRAINER_FAILED"],
  ])("%s -> %s", (line, code) => {
    expect(parseAiToolkitLine(line, {})[0]).toMatchObject({ type: "error", code });
  });

  it("notes a resume and the step it continues from", () => {
    const state: AiToolkitParseState = {};
    expect(parseAiToolkitLine("#### IMPORTANT RESUMING FROM output/x/x_000000500.safetensors ####", state)[0]?.type).toBe("log");
    parseAiToolkitLine("Found step 500 in metadata, starting from there", state);
    expect(state.step).toBe(500);
  });
});
