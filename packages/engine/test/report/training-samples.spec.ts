import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { judgeValidation } from "@loraspec/core/validate/judge-validation.js";
import { planValidation } from "@loraspec/core/validate/plan-validation.js";
import { buildScoreRequest, setId, type ScoreResult } from "@loraspec/core/validate/score-request.js";
import { renderReport } from "@loraspec/engine/report/render-report.js";
import { trainingSamplesHtml } from "@loraspec/engine/report/training-samples-html.js";
import { reportTrainingSamples } from "@loraspec/engine/validate/report-training-samples.js";
import { tempDirsPerFile } from "../test-helpers.js";

/** Temp folders, removed when this file's tests are done. */
const tempDir = tempDirsPerFile("ls-report-samples-");

const PNG = Buffer.from("89504e470d0a1a0a", "hex"); // enough for a data URI; never decoded here

async function runWithSamples() {
  const runDir = tempDir();
  const samples = join(runDir, "output", "samples");
  await mkdir(samples, { recursive: true });
  const lines: string[] = [];
  for (const step of [2, 4]) {
    for (const seed of [42, 7]) {
      const file = join(samples, `step-00000${step}-p0-s${seed}.png`);
      await writeFile(file, PNG);
      lines.push(JSON.stringify({ type: "sample", step, path: file, prompt: "a photo of <b>txcl</b>", seed }));
    }
  }
  lines.push(JSON.stringify({ type: "sample", step: 6, path: "/etc/hostname.png", prompt: "x", seed: 1 }));
  await writeFile(join(runDir, "events.jsonl"), `${lines.join("\n")}\n`);
  return runDir;
}

/** A one-prompt character rubric for one LoRA, and its score request. */
function onePromptRubric() {
  const plan = planValidation({
    rubric: { seeds: [1], trigger_prompts: ["a photo of {trigger}"], pose_variations: 2, novel_scenes: [], stack: [], self_weight: 1, weight_sweep: [1] },
    trigger: "txcl",
    target: "character",
    candidates: [{ name: "txcl.safetensors", path: "/loras/txcl.safetensors" }],
  });
  return { plan, request: buildScoreRequest({ plan, image: (id) => id, reference: ["a", "b"] }) };
}

describe("the report's strip of samples during training", () => {
  it("links the run's images relative to the report, a row per prompt x seed and a column per step; hostile paths dropped", async () => {
    const runDir = await runWithSamples();
    const t = await reportTrainingSamples(join(runDir, "events.jsonl"), join(runDir, "validation", "final"), false);
    expect(t.samples.map((s) => [s.step, s.seed])).toEqual([[2, 42], [2, 7], [4, 42], [4, 7]]);
    const html = trainingSamplesHtml(t.samples, t.src);
    expect(html).toContain('src="../../output/samples/step-000002-p0-s42.png"');
    expect(html.match(/<tr>/g)).toHaveLength(3); // header + 2 seeds
    expect(html.indexOf("step 2")).toBeLessThan(html.indexOf("step 4"));
    expect(html).not.toContain("<b>txcl");
    expect(html).not.toContain("hostname");
  });

  it("heads a step-0 column (samples.first: the base before training) as the base", () => {
    const html = trainingSamplesHtml([{ step: 0, prompt: "p", seed: 1, file: "/r/a.png" }, { step: 100, prompt: "p", seed: 1, file: "/r/b.png" }], () => "x.png");
    expect(html).toContain("<th>step 0 · base</th><th>step 100</th>");
    expect(trainingSamplesHtml([{ step: 100, prompt: "p", seed: 1, file: "/r/b.png" }], () => "x.png")).not.toContain("base");
  });

  it("inlines the images as data URIs for a one-file report", async () => {
    const runDir = await runWithSamples();
    const t = await reportTrainingSamples(join(runDir, "events.jsonl"), join(runDir, "validation"), true);
    expect(t.src(t.samples[0]!)).toMatch(/^data:image\/png;base64,/);
  });

  it("appears in the validation report after the loss curve, and says how to turn it on when the run had none", () => {
    const { plan, request } = onePromptRubric();
    const scores: ScoreResult = {
      embedder: { clip: "clip" },
      reference: { count: 2, pairwise_clip: 0.85 },
      trigger: Object.fromEntries(request.trigger.map((t) => [t.id, { distance: 0.2, base_distance: 0.05, effect: 0.15 }])),
      sets: Object.fromEntries(request.sets.map((s) => [s.id, { count: s.images.length, fidelity_clip: 0.78, diversity: 0.3, collapse_share: 0.4, near_duplicate_share: 0, clip_t: 0.29 }])),
      stack: {},
    };
    const result = { name: "x", createdAt: "t", settings: { width: 64, height: 64, steps: 4 }, sampler: "worker", plan, scores, verdicts: judgeValidation({ plan, scores }), images: {}, reference: [] };
    const html = renderReport({ result, loss: [], imageSrc: (id) => id, trainingSamples: { samples: [{ step: 5, prompt: "p", seed: 1, file: "/r/s.png" }], src: () => "s.png" } });
    expect(html.indexOf('id="loss"')).toBeLessThan(html.indexOf('id="training-samples"'));
    expect(html).toContain('src="s.png"');
    expect(renderReport({ result, loss: [], imageSrc: (id) => id, trainingSamples: { samples: [], src: () => "" } })).toContain("samples.every");
    expect(renderReport({ result, loss: [], imageSrc: (id) => id })).not.toContain('id="training-samples"');
  });

  it("shows a failing measure's advice beside it, escaped, and none for a passing one", () => {
    const { plan, request } = onePromptRubric();
    const scores = (baseOff: number): ScoreResult => ({
      embedder: { clip: "clip" },
      reference: { count: 2, pairwise_clip: 0.9 },
      trigger: Object.fromEntries(request.trigger.map((t) => [t.id, { distance: 0.2, base_distance: 0.05, effect: 0.15 }])),
      sets: Object.fromEntries(request.sets.map((s) => [s.id, { count: s.images.length, fidelity_clip: s.id === setId.baseTriggerOff ? baseOff : 0.85, diversity: 0.3, collapse_share: 0.4, near_duplicate_share: 0, clip_t: 0.29 }])),
      stack: {},
    });
    const html = (baseOff: number) => {
      const verdicts = judgeValidation({ plan, scores: scores(baseOff) });
      const result = { name: "x", createdAt: "t", settings: { width: 64, height: 64, steps: 4 }, sampler: "worker", plan, scores: scores(baseOff), verdicts, images: {}, reference: [] };
      return { verdicts, html: renderReport({ result, loss: [], imageSrc: (id) => id }) };
    };
    const leaking = html(0.5); // the LoRA without its trigger as close to the training images as with it: leak 1
    expect(leaking.verdicts.weights[0]!.checks.find((c) => c.check === "trigger")!.measures.find((m) => m.id === "trigger_leak")!.status).toBe("fail");
    expect(leaking.html).toMatch(/<tr class="advice">.*What to try:<\/b> The trigger does not bind/);
    expect(leaking.html).toContain("arXiv 2208.12242");
    expect(html(0.85).html).not.toContain('class="advice"'); // the base draws it too: leak not measured, no advice
  });
});
