import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents, type LoraspecEvent } from "@loraspec/core/events.js";
import type { ScoreRequest, ScoreResult } from "@loraspec/core/validate/score-request.js";
import { openRunStore } from "@loraspec/engine/run/run-store.js";
import type { RunWorkerFn } from "@loraspec/engine/samplers/worker-sampler.js";
import { validateProject } from "@loraspec/engine/validate/validate-project.js";
import { writeValidationScript } from "@loraspec/engine/validate/write-validation-script.js";
import type { ValidationResult } from "@loraspec/engine/validate/validate-lora.js";

// Orchestration only (contract, run store, checkpoints, stack paths, output folder): the worker is
// replaced by a stand-in that writes PNGs and answers scores, so no Python runs here. The real
// worker path is covered by validate-lora.spec.ts and cli-validate.spec.ts.
let dir: string;
const requests: { command: string; request: Record<string, unknown> }[] = [];

const fakeWorker: RunWorkerFn = async function* ({ command, request }) {
  const req = request as Record<string, unknown>;
  requests.push({ command, request: req });
  if (command === "render-jobs") {
    const jobs = req.jobs as { id: string; seed: number; adapters: { weight: number }[] }[];
    mkdirSync(req.out_dir as string, { recursive: true });
    for (const [i, j] of jobs.entries()) {
      const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: j.seed * 40, g: j.adapters.length * 80, b: 10 } } }).png().toBuffer();
      writeFileSync(join(req.out_dir as string, `${j.id}.png`), png);
      yield { type: "progress", task: "sample", current: i + 1, total: jobs.length } satisfies LoraspecEvent;
    }
    yield { type: "done", result: {} };
    return;
  }
  const s = request as ScoreRequest;
  // Checkpoint "step-4" has a strong trigger, "step-2" none.
  const result: ScoreResult = {
    embedder: { clip: s.model },
    reference: { count: s.reference.length, pairwise_clip: 0.9 },
    trigger: Object.fromEntries(s.trigger.map((t) => [t.id, { distance: 0.2, base_distance: 0.1, effect: t.id.startsWith("step 4") ? 0.1 : 0 }])),
    sets: Object.fromEntries(s.sets.map((x) => [x.id, { count: x.images.length, fidelity_clip: 0.85, diversity: 0.3, collapse_share: 0.3, near_duplicate_share: 0, clip_t: 0.3 }])),
    stack: Object.fromEntries(s.stack.map((x) => [x.id, { retention: { final: 0.8, style: 0.7 }, shift: { final: 0.2, style: 0.2 } }])),
  };
  yield { type: "done", result: result as unknown as Record<string, unknown> };
};

let runId: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loraspec-validate-project-"));
  mkdirSync(join(dir, "dataset"));
  for (let i = 0; i < 3; i++) {
    await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: i * 60, g: 0, b: 0 } } }).png().toFile(join(dir, "dataset", `img${i}.png`));
  }
  writeFileSync(join(dir, "style.safetensors"), "x");
  writeFileSync(
    join(dir, "lora.yaml"),
    stringify({
      version: 1,
      name: "txcl",
      base: { model: "sdxl", path: "./base" },
      trainer: { name: "diffusers" },
      target: "character",
      dataset: { path: "./dataset" },
      trigger: { word: "txcl" },
      validation: { seeds: [1], novel_scenes: ["{trigger} at the beach"], stack: [{ lora: "./style.safetensors", weight: 0.3 }], self_weight: 0.5 },
    }),
  );
  const store = openRunStore({ projectDir: dir });
  const run = store.create({ trainer: "diffusers", name: "txcl" });
  runId = run.id;
  const ck = (step: number) => join(run.runDir, "checkpoints", `step-${step}`);
  for (const step of [2, 4]) {
    mkdirSync(ck(step), { recursive: true });
    writeFileSync(join(ck(step), "lora.safetensors"), "x");
  }
  writeFileSync(join(run.runDir, "final.safetensors"), "x");
  store.transition(run.id, "starting");
  store.transition(run.id, "running");
  store.transition(run.id, "succeeded", { outputPath: join(run.runDir, "final.safetensors"), step: 6 });
  store.close();
  const lines = [
    { type: "loss", step: 1, loss: 0.4 },
    { type: "checkpoint", step: 2, path: ck(2) },
    { type: "loss", step: 3, loss: 0.3 },
    { type: "checkpoint", step: 4, path: join(ck(4), "lora.safetensors") },
    { type: "checkpoint", step: 9, path: join(run.runDir, "gone.safetensors") },
  ];
  writeFileSync(join(run.runDir, "events.jsonl"), lines.map((l) => JSON.stringify(l)).join("\n"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(params: Partial<Parameters<typeof validateProject>[0]>) {
  requests.length = 0;
  const events = await collectEvents(validateProject({ cwd: dir, runWorker: fakeWorker, width: 8, height: 8, steps: 1, ...params }));
  return events;
}

describe("validateProject", () => {
  it("--run: validates the run's LoRA with the contract's stack, into the run's validation folder", async () => {
    const events = await run({ runId });
    const done = events.at(-1) as Extract<LoraspecEvent, { type: "done" }>;
    expect(done.result?.report).toMatch(new RegExp(`runs/${runId}/validation/report\\.html$`));
    const render = requests.find((r) => r.command === "render-jobs")!.request;
    expect(render.base).toBe(join(dir, "base"));
    expect((render.loras as { path: string }[]).map((l) => l.path)).toEqual(expect.arrayContaining([join(dir, "style.safetensors")]));
    expect((render.arch as string)).toBe("sdxl");
    const score = requests.find((r) => r.command === "score")!.request as unknown as ScoreRequest;
    expect(score.reference).toHaveLength(3);
    expect(done.result?.stack).toBe("pass");
  });

  it("--run --checkpoints: one weight per checkpoint on disk (+ the final file), best step picked, loss curve in the report", async () => {
    const events = await run({ runId, checkpoints: true });
    const done = events.at(-1) as Extract<LoraspecEvent, { type: "done" }>;
    const result = JSON.parse(readFileSync(done.result!.json as string, "utf8")) as ValidationResult;
    expect(result.plan.weights.map((w) => [w.step, w.weight])).toEqual([[2, 1], [4, 1], [6, 1]]);
    expect(result.plan.stack).toBeUndefined();
    expect(done.result?.best).toMatchObject({ step: 4 });
    expect(readFileSync(done.result!.report as string, "utf8")).toContain('<svg id="loss-curve"');
  });

  it.each([
    [{}, "E_USAGE"],
    [{ lora: "nope.safetensors" }, "E_FILE_NOT_FOUND"],
    [{ runId: "01NOPE" }, "E_RUN_NOT_FOUND"],
    [{ lora: "style.safetensors", sampler: "comfyui" as const }, "E_USAGE"],
    [{ lora: "style.safetensors", maxSequenceLength: 32 }, "E_USAGE"], // SDXL: CLIP only
  ])("%j -> %s", async (params, code) => {
    await expect(run(params)).rejects.toMatchObject({ code });
  });

  it("--max-sequence-length reaches the worker's render request on a FLUX.1 contract; other samplers refuse it", async () => {
    const flux = join(dir, "flux.yaml");
    writeFileSync(flux, readFileSync(join(dir, "lora.yaml"), "utf8").replace("model: sdxl", "model: flux1-dev"));
    await run({ contractPath: flux, lora: "style.safetensors", maxSequenceLength: 32 });
    const render = requests.find((r) => r.command === "render-jobs");
    expect(render?.request.max_sequence_length).toBe(32);
    await run({ contractPath: flux, lora: "style.safetensors" });
    expect(requests.find((r) => r.command === "render-jobs")?.request).not.toHaveProperty("max_sequence_length");
    await expect(run({ contractPath: flux, lora: "style.safetensors", maxSequenceLength: 32, sampler: "fal" })).rejects.toMatchObject({
      code: "E_USAGE",
      field: "--max-sequence-length",
    });
  });

  // The render size without --width/--height: what the LoRA trained at (dataset.resolution), else the base's native
  // size; the reason is said. An SDXL-class contract training at 64 px rendered at 1024 (256x its training pixels).
  it.each<[string, Record<string, unknown>, { width?: number; height?: number }, [number, number], RegExp]>([
    ["dataset.resolution 64 on SDXL", { resolution: 64 }, {}, [64, 64], /^rendering at 64x64: the contract's dataset\.resolution, what the LoRA trained at \(--width\/--height to change\)$/],
    ["no dataset.resolution", {}, {}, [1024, 1024], /^rendering at 1024x1024: the base's native resolution \(the contract sets no dataset\.resolution\)/],
    ["dataset.resolution 100 (not a render size)", { resolution: 100 }, {}, [1024, 1024], /^rendering at 1024x1024: the base's native resolution \(dataset\.resolution 100 is not a multiple of 8/],
    ["--width given", { resolution: 64 }, { width: 128 }, [128, 64], /^rendering at 128x64: --width 128, height the contract's dataset\.resolution/],
    ["both given", { resolution: 64 }, { width: 128, height: 96 }, [128, 96], /^$/],
  ])("render size: %s", async (_name, dataset, flags, [width, height], said) => {
    const file = join(dir, "res.yaml");
    writeFileSync(file, readFileSync(join(dir, "lora.yaml"), "utf8").replace("path: ./dataset", `path: ./dataset\n  ${Object.entries(dataset).map(([k, v]) => `${k}: ${v}`).join("\n  ")}`));
    requests.length = 0;
    const events = await collectEvents(validateProject({ cwd: dir, runWorker: fakeWorker, steps: 1, contractPath: file, lora: "style.safetensors", ...flags }));
    const render = requests.find((r) => r.command === "render-jobs")!.request as { jobs: Array<{ width?: number; height?: number }>; width?: number; height?: number };
    expect([render.width ?? render.jobs[0]!.width, render.height ?? render.jobs[0]!.height]).toEqual([width, height]);
    const line = events.find((e) => e.type === "log" && e.message.startsWith("rendering at"));
    expect(line && "message" in line ? line.message : "").toMatch(said);
  });

  it("export-script writes the same default size: the contract's dataset.resolution", async () => {
    const file = join(dir, "res64.yaml");
    writeFileSync(file, readFileSync(join(dir, "lora.yaml"), "utf8").replace("path: ./dataset", "path: ./dataset\n  resolution: 64"));
    const { path } = await writeValidationScript({ cwd: dir, contractPath: file, lora: "style.safetensors", out: "v64.py", force: true });
    expect(readFileSync(path, "utf8")).toMatch(/"width": 64,\n\s*"height": 64,/);
  });
});

