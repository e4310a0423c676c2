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
    // A new postfix on the bar at n is step n+1's loss (set before update, see the recorded runs).
    expect(losses.map((e) => e.type === "loss" && [e.step, e.loss, e.lr])).toEqual([
      [30, 0.4167, 1e-4],
      [60, 0.4675, 1e-4],
      [90, 0.3816, 1e-4],
      [120, 0.3752, 1e-4],
      [150, Number.NaN, 1e-4],
      [210, 0.4357, 1e-4],
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

describe("parseAiToolkitLine on recorded ai-toolkit runs (0.12.26, tiny SDXL on CPU)", () => {
  const fixture = (name: string) => readFileSync(new URL(`./fixtures/ai-toolkit/${name}`, import.meta.url), "utf8");
  const run = (name: string) => {
    const state: AiToolkitParseState = { jobName: "aitk-tiny-sdxl" };
    return splitLines(fixture(name)).flatMap((line) => parseAiToolkitLine(line, state));
  };

  it("one loss per step, the postfix that was set before each update", () => {
    const losses = run("sdxl-tiny-cpu-6steps-save2.log").flatMap((e) => (e.type === "loss" ? [[e.step, e.loss]] : []));
    expect(losses).toEqual([
      [1, 0.9945],
      [2, 1.078],
      [3, 1.06],
      [4, 1.046],
      [5, 1.087],
      [6, 1.07],
    ]);
  });

  it("checkpoints labelled 2 and 4 hold 3 and 5 updates; the final file 6", () => {
    const checkpoints = run("sdxl-tiny-cpu-6steps-save2.log").flatMap((e) => (e.type === "checkpoint" ? [[e.step, e.path.split("/").at(-1)]] : []));
    expect(checkpoints).toEqual([
      [3, "aitk-tiny-sdxl_000000002.safetensors"],
      [5, "aitk-tiny-sdxl_000000004.safetensors"],
      [6, "aitk-tiny-sdxl.safetensors"],
    ]);
  });

  it("a resumed run continues at step 7 and saves at 8", () => {
    const events = run("sdxl-tiny-cpu-resume-to-8.log");
    expect(events.flatMap((e) => (e.type === "loss" ? [[e.step, e.loss]] : []))).toEqual([
      [7, 1.042],
      [8, 1.034],
    ]);
    expect(events.filter((e) => e.type === "log").map((e) => e.type === "log" && e.message)).toEqual([
      "ai-toolkit resumes from /work/main/.tmp/aitk/out/aitk-tiny-sdxl/aitk-tiny-sdxl.safetensors",
      "ai-toolkit continues at step 6",
    ]);
    expect(events.filter((e) => e.type === "checkpoint")).toEqual([
      { type: "checkpoint", step: 8, path: "/work/main/.tmp/aitk/out/aitk-tiny-sdxl/aitk-tiny-sdxl.safetensors" },
    ]);
    expect(events.filter((e) => e.type === "error" || e.type === "warning")).toEqual([]);
  });
});

describe("parseAiToolkitLine on recorded GPU runs (0.12.26, full-size random SDXL, H200)", () => {
  const fixture = (name: string) => readFileSync(new URL(`./fixtures/ai-toolkit/${name}`, import.meta.url), "utf8");
  const run = (name: string) => {
    const state: AiToolkitParseState = { jobName: "gpu-aitk-sdxl" };
    return splitLines(fixture(name)).flatMap((line) => parseAiToolkitLine(line, state));
  };

  it("a crash in the first sample: losses, the step-2 save, then the error behind a cursor escape", () => {
    const events = run("gpu-sdxl-fresh-crash-in-sampling.log");
    expect(events.flatMap((e) => (e.type === "loss" ? [[e.step, e.loss]] : []))).toEqual([
      [1, 1.661],
      [2, 1.663],
      [3, 1.616],
    ]);
    expect(events.filter((e) => e.type === "checkpoint").map((e) => e.type === "checkpoint" && e.step)).toEqual([3]);
    const errors = events.filter((e) => e.type === "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: "E_TRAINER_FAILED" });
    expect(errors[0]?.type === "error" && errors[0].message).toMatch(/^text input must be of type `str`/);
  });

  it("the rerun resumes from the step-2 save, samples with the fixed neg, and finishes", () => {
    const events = run("gpu-sdxl-resume-from-2-to-6.log");
    expect(events.flatMap((e) => (e.type === "loss" ? [[e.step, e.loss]] : []))).toEqual([
      [3, 1.588],
      [4, 1.512],
      [5, 1.434],
      [6, 1.322],
    ]);
    expect(events.filter((e) => e.type === "progress" && e.task === "sample").length).toBeGreaterThanOrEqual(2);
    expect(events.filter((e) => e.type === "checkpoint").map((e) => e.type === "checkpoint" && e.path.split("/").at(-1))).toEqual([
      "gpu-aitk-sdxl_000000004.safetensors",
      "gpu-aitk-sdxl.safetensors",
    ]);
    expect(events.filter((e) => e.type === "error")).toEqual([]);
  });
});
