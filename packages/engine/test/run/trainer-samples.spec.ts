import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { describe, expect, it } from "vitest";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import { compileAiToolkit } from "@loraspec/core/compile/ai-toolkit/compile-ai-toolkit.js";
import { compileKohya } from "@loraspec/core/compile/kohya/compile-kohya.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { parseSampleFileName, sampleStepOf } from "@loraspec/core/trainers/sample-files.js";
import { openRunStore, type RunRecord } from "@loraspec/engine/run/run-store.js";
import { startRun } from "@loraspec/engine/run/run-training.js";
import type { LineParser } from "@loraspec/engine/run/supervise-process.js";
import type { ProcessJob } from "@loraspec/engine/run/train-job.js";
import { trainingSamples } from "@loraspec/engine/run/training-samples.js";
import { watchTrainerSamples } from "@loraspec/engine/run/trainer-sample-watch.js";
import { tempDirsPerTest } from "../test-helpers.js";

const fakeTrainer = fileURLToPath(new URL("./fixtures/fake-trainer.mjs", import.meta.url));
const noParse: LineParser = () => [];

const tempDir = tempDirsPerTest("loraspec-samples-");

function contract(trainer: string, samples: Record<string, unknown>) {
  const text = stringify({
    version: 1,
    name: "txcl",
    base: { model: "sdxl" },
    trainer: { name: trainer },
    target: "character",
    dataset: { path: "./dataset" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 6, save_every: 3, optimizer: "adamw" },
    samples,
  });
  return parseContractText({ text, file: "lora.yaml" });
}

async function run(dir: string, trainer: string, job: (r: RunRecord) => ProcessJob): Promise<{ run: RunRecord; events: LoraspecEvent[] }> {
  const store = openRunStore({ projectDir: dir });
  try {
    const gen = startRun({ store, projectDir: dir, name: "txcl", base: "sdxl", trainer, job: async (r: RunRecord) => job(r), textParsers: { kohya: noParse, "ai-toolkit": noParse }, pollMs: 20 });
    const events: LoraspecEvent[] = [];
    let next = await gen.next();
    while (!next.done) {
      events.push(next.value);
      next = await gen.next();
    }
    return { run: next.value, events };
  } finally {
    store.close();
  }
}

const samplesOf = (events: LoraspecEvent[]) => events.filter((e): e is Extract<LoraspecEvent, { type: "sample" }> => e.type === "sample");

describe("Kohya's and ai-toolkit's own sample images become sample events (fake trainer, real supervisor)", () => {
  it("kohya: the compiled prompt file read as sd-scripts reads it; every image once, with its step, prompt and seed; hostile names dropped", async () => {
    const dir = tempDir();
    const c = contract("kohya", { every: 2, prompts: ["a photo of {trigger}", "{trigger} on a beach"], seeds: [7, 8] });
    const job = (r: RunRecord): ProcessJob => {
      const compiled = compileKohya(c, planRun(c), { datasetDir: join(dir, "dataset"), outputDir: join(r.runDir, "output"), configDir: r.runDir });
      const prompts = compiled.files.find((f) => f.name === "sample_prompts.txt")!;
      return {
        kind: "process",
        trainer: "kohya",
        command: process.execPath,
        args: [fakeTrainer, "--output_dir", join(r.runDir, "output"), "--output_name", "txcl", "--sample_prompts", prompts.path, "--sample_every_n_steps", "2", "--hostile_samples", "1"],
        cwd: dir,
        files: { "sample_prompts.txt": prompts.content },
        parser: "kohya",
        output: join(r.runDir, "output", "txcl.safetensors"),
        resume: { kind: "none" },
        totalSteps: 6,
        samples: compiled.outputs.samples,
      };
    };
    const { run: record, events } = await run(dir, "kohya", job);
    expect(record.state).toBe("succeeded");
    const got = samplesOf(events).map((e) => ({ step: e.step, prompt: e.prompt, seed: e.seed }));
    const want = [2, 4, 6].flatMap((step) => ["a photo of txcl", "txcl on a beach"].flatMap((prompt) => [7, 8].map((seed) => ({ step, prompt, seed }))));
    expect(got).toEqual(want);
    for (const e of samplesOf(events)) expect(e.path.startsWith(join(record.runDir, "output", "sample") + "/")).toBe(true);
    // The run's page and report read them back from events.jsonl.
    const shown = await trainingSamples({ runDir: record.runDir });
    expect(shown.map((s) => s.step)).toEqual(want.map((w) => w.step));
  });

  it("ai-toolkit: its 0-based in-loop labels and its end-of-run label are the optimizer steps; prompts and seeds from the compiled sample block", async () => {
    const dir = tempDir();
    const c = contract("ai-toolkit", { every: 2, prompts: ["a photo of {trigger}"], seeds: [3, 4] });
    const job = (r: RunRecord): ProcessJob => {
      const compiled = compileAiToolkit(c, planRun(c), { datasetDir: join(dir, "dataset"), outputDir: join(r.runDir, "output"), configDir: r.runDir });
      const watch = compiled.outputs.samples!;
      expect(watch.dir).toBe(join(compiled.outputs.jobDir, "samples"));
      const block = (compiled.job.config as { process: { sample: { samples: unknown[] } }[] }).process[0]!.sample;
      expect(block.samples).toHaveLength(watch.items.length);
      return {
        kind: "process",
        trainer: "ai-toolkit",
        command: process.execPath,
        args: [fakeTrainer, "--output_dir", compiled.outputs.jobDir, "--output_name", "txcl", "--job_dir", compiled.outputs.jobDir, "--aitk_samples", String(watch.items.length), "--sample_every", "2"],
        cwd: dir,
        parser: "ai-toolkit",
        output: compiled.outputs.lora,
        resume: { kind: "automatic" },
        totalSteps: 6,
        samples: watch,
      };
    };
    const { run: record, events } = await run(dir, "ai-toolkit", job);
    expect(record.state).toBe("succeeded");
    for (const e of samplesOf(events)) expect(e.path.startsWith(join(record.runDir, "output", "txcl", "samples") + "/")).toBe(true);
    expect((await trainingSamples({ runDir: record.runDir })).map((s) => s.step)).toEqual([3, 3, 5, 5, 6, 6]);
    // Labels 2 and 4 (after updates 3 and 5), then 6 at the end: as its checkpoints, one less than the updates in-loop.
    expect(samplesOf(events).map((e) => [e.step, e.prompt, e.seed])).toEqual([3, 5, 6].flatMap((s) => [[s, "a photo of txcl", 3], [s, "a photo of txcl", 4]]));
  });

  it("ai-toolkit without samples.every: nothing rendered, nothing watched for (disable_sampling)", () => {
    const c = contract("ai-toolkit", {});
    const compiled = compileAiToolkit(c, planRun(c), { datasetDir: "/d", outputDir: "/o" });
    expect(compiled.outputs.samples).toBeUndefined();
    expect((compiled.job.config as { process: Array<{ train: Record<string, unknown> }> }).process[0]!.train.disable_sampling).toBe(true);
  });

  it("reads names exactly as each trainer writes them, and nothing else", () => {
    const k = { naming: "kohya" as const, prefix: "my_lora" };
    expect(parseSampleFileName(k, "my_lora_000250_01_20261202143000_42.png")).toEqual({ label: 250, index: 1, seed: 42 });
    expect(parseSampleFileName(k, "my_lora_1000000_00_20261202143000.png")).toEqual({ label: 1000000, index: 0 });
    for (const bad of ["my_lora_e000001_00_20261202143000_42.png", "my_lora_000250_01_20261202143000_42.jpg", "other_000250_01_20261202143000_42.png", "my_lora_../000250_01_20261202143000_42.png", "my_lora_000250_1_20261202143000_42.png", "my_lora_99999999999999999999_01_20261202143000_42.png"]) {
      expect(parseSampleFileName(k, bad)).toBeUndefined();
    }
    const a = { naming: "ai-toolkit" as const };
    expect(parseSampleFileName(a, "1764685800123__000000249_3.jpg")).toEqual({ label: 249, index: 3 });
    for (const bad of ["1764685800123__0.jpg", "1764685800123_000000249_3.jpg", "1764685800123__000000249_3.jpg.txt", "x__000000249_3.jpg"]) expect(parseSampleFileName(a, bad)).toBeUndefined();
    expect([0, 249, 999, 1000].map((label) => sampleStepOf({ naming: "ai-toolkit", totalSteps: 1000 }, label))).toEqual([0, 250, 1000, 1000]);
  });

  it("skips what was there before the start, waits for a file to stop growing, and stops past the entry limit with one warning", async () => {
    const dir = tempDir();
    const watch = { naming: "ai-toolkit" as const, dir, items: [{ prompt: "p", seed: 1 }], totalSteps: 10 };
    writeFileSync(join(dir, "1__000000001_0.jpg"), "old");
    const source = await watchTrainerSamples(watch, 5);
    writeFileSync(join(dir, "2__000000003_0.jpg"), "half");
    expect(await source.poll(false)).toEqual([]);
    writeFileSync(join(dir, "2__000000003_0.jpg"), "half and the rest");
    expect(await source.poll(false)).toEqual([]);
    expect(await source.poll(false)).toEqual([{ type: "sample", step: 4, path: join(dir, "2__000000003_0.jpg"), prompt: "p", seed: 1 }]);
    for (let i = 0; i < 10; i++) writeFileSync(join(dir, `junk-${i}`), "x");
    const flood = await source.poll(true);
    expect(flood).toEqual([expect.objectContaining({ type: "warning", code: "SAMPLE_FOLDER_TOO_LARGE" })]);
    writeFileSync(join(dir, "3__000000005_0.jpg"), "late");
    expect(await source.poll(true)).toEqual([]);
    expect(readFileSync(join(dir, "1__000000001_0.jpg"), "utf8")).toBe("old");
  });

  it("a sample folder that is missing or a file yields nothing and never throws", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "not-a-folder"), "x");
    for (const at of [join(dir, "missing"), join(dir, "not-a-folder")]) {
      const source = await watchTrainerSamples({ naming: "kohya", dir: at, prefix: "txcl", items: [{ prompt: "p", seed: 1 }], totalSteps: 10 });
      expect(await source.poll(false)).toEqual([]);
      expect(await source.poll(true)).toEqual([]);
    }
  });
});
