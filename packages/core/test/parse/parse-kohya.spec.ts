import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { parseKohyaLine, type KohyaParseState } from "@loraspec/core/parse/parse-kohya-line.js";
import { createLineSplitter } from "@loraspec/core/parse/split-lines.js";

const fixture = (name: string) => readFileSync(new URL(`./fixtures/kohya/${name}`, import.meta.url), "utf8");

/** Feeds a recorded log through the splitter in odd-sized chunks, as a pipe would deliver it. */
function parseLog(text: string, chunk = 97): LoraspecEvent[] {
  const splitter = createLineSplitter();
  const state: KohyaParseState = {};
  const events: LoraspecEvent[] = [];
  for (let i = 0; i < text.length; i += chunk) {
    for (const line of splitter.push(text.slice(i, i + chunk))) events.push(...parseKohyaLine(line, state));
  }
  for (const line of splitter.flush()) events.push(...parseKohyaLine(line, state));
  return events;
}

const of = <T extends LoraspecEvent["type"]>(events: LoraspecEvent[], type: T) =>
  events.filter((e): e is Extract<LoraspecEvent, { type: T }> => e.type === type);

describe("parseKohyaLine on recorded sd-scripts runs", () => {
  it.each([
    ["sdxl-6steps-save2.log", [3.39, 3.38, 3.36, 3.33, 3.23, 3.07]],
    ["flux1-dev-6steps-save2.log", [2.28, 2.49, 2.46, 2.5, 2.53, 2.46]],
  ])("%s: one loss per step, the set_postfix value", (name, losses) => {
    const events = parseLog(fixture(name));
    expect(of(events, "loss").map((e) => [e.step, e.loss])).toEqual(losses.map((l, i) => [i + 1, l]));
  });

  it.each(["sdxl-6steps-save2.log", "flux1-dev-6steps-save2.log"])("%s: checkpoints at 2, 4, 6 and the final file", (name) => {
    const checkpoints = of(parseLog(fixture(name)), "checkpoint");
    expect(checkpoints.map((c) => c.step)).toEqual([2, 4, 6, 6]);
    expect(checkpoints[0]?.path).toMatch(/-step00000002\.safetensors$/);
    expect(checkpoints[3]?.path).toMatch(/gpu-(sdxl|flux)\.safetensors$/);
  });

  it("reads the phases, the step total, the epochs and the final progress", () => {
    const events = parseLog(fixture("sdxl-6steps-save2.log"));
    expect(of(events, "phase").map((p) => p.name)).toEqual(["cache-latents", "cache-text-encoder", "train"]);
    expect(of(events, "progress").filter((p) => p.task === "epoch").map((p) => [p.current, p.total])).toEqual([
      [1, 2],
      [2, 2],
    ]);
    const train = of(events, "progress").filter((p) => p.task === "train");
    expect(train.at(-1)).toMatchObject({ current: 6, total: 6 });
    expect(train.at(-1)?.rate).toBeCloseTo(1 / 2.08, 3);
    expect(of(events, "error")).toEqual([]);
  });

  it("reports a NaN loss once, with the step it appeared at", () => {
    const events = parseLog(fixture("sdxl-nan-lr1e6.log"));
    const losses = of(events, "loss");
    expect(losses.map((l) => l.step)).toEqual([1, 2, 3, 4]);
    expect(losses[0]?.loss).toBeCloseTo(3.45);
    expect(losses.slice(1).every((l) => Number.isNaN(l.loss))).toBe(true);
    const warnings = of(events, "warning").filter((w) => w.code === "LOSS_NOT_FINITE");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.message).toContain("step 2");
  });

  it("turns the CUDA OOM traceback into E_OUT_OF_MEMORY", () => {
    const errors = of(parseLog(fixture("sdxl-oom.log")), "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: "E_OUT_OF_MEMORY", retryable: true });
    expect(errors[0]?.message).toMatch(/^torch\.OutOfMemoryError: CUDA out of memory\. Tried to allocate 14\.00 MiB/);
  });

  it("does not depend on chunk size", () => {
    const text = fixture("flux1-dev-6steps-save2.log");
    expect(parseLog(text, 1)).toEqual(parseLog(text, 4096));
  });
});

describe("parseKohyaLine, single lines", () => {
  it.each([
    ["user log (fluxgym#29)", "steps:   1%|          | 17/2100 [01:56<3:57:22,  6.84s/it, avr_loss=0.343]", { current: 17, total: 2100, eta: 3 * 3600 + 57 * 60 + 22 }],
    ["bar followed by a log line", "steps: 100%|██████████| 6/6 [00:09<00:00,  1.67s/it, avr_loss=2.46]                    INFO   x.py:1", { current: 6, total: 6, eta: 0 }],
  ])("%s", (_name, line, progress) => {
    const events = parseKohyaLine(line, {});
    expect(events[0]).toMatchObject({ type: "progress", task: "train", ...progress });
    expect(events[1]?.type).toBe("loss");
  });

  it.each(["", "INFO     prepare images.                  train_util.py:2112", "import network module: networks.lora"])(
    "gives nothing for %j",
    (line) => expect(parseKohyaLine(line, {})).toEqual([]),
  );

  it("knows sd-scripts' latent NaN guard and unknown-argument errors", () => {
    expect(parseKohyaLine("NaN found in latents, replacing with zeros", {})[0]).toMatchObject({ type: "warning", code: "KOHYA_NAN_LATENTS" });
    expect(parseKohyaLine("train_network.py: error: unrecognized arguments: --text_encoder_lr1=1e-5", {})[0]).toMatchObject({
      type: "error",
      code: "E_TRAINER_FAILED",
    });
  });
});
