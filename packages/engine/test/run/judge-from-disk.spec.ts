import { mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { judgeFromDisk } from "@loraspec/engine/run/judge-from-disk.js";
import { openRunStore, type RunStore } from "@loraspec/engine/run/run-store.js";
import { tinyLora } from "../emulators/fal-emulator.js";
import { tempDirsPerTest } from "../test-helpers.js";

const project = tempDirsPerTest("loraspec-judge-");

const dead = () => false;

/** A run whose trainer (pid 4242) and supervisor are gone, with a folder written as `files` says. */
function deadRun(store: RunStore, setup: (runDir: string) => void, state: "running" | "interrupted" = "running") {
  const run = store.create({ trainer: "diffusers", totalSteps: 8 });
  store.transition(run.id, "starting");
  store.transition(run.id, "running", { pid: 4242, step: 4 });
  if (state === "interrupted") store.transition(run.id, "interrupted", { errorCode: "E_WORKER_CRASHED", errorMessage: "gone" });
  mkdirSync(run.runDir, { recursive: true });
  setup(run.runDir);
  return run;
}

function workerJob(runDir: string, lines: string[], opts: { offset?: number; lora?: Buffer | null } = {}) {
  const output = join(runDir, "out", "lora.safetensors");
  writeFileSync(join(runDir, "job.json"), JSON.stringify({ kind: "process", parser: "worker-jsonl", output, totalSteps: 8 }));
  const text = lines.join("\n") + "\n";
  writeFileSync(join(runDir, "stdout.log"), text);
  writeFileSync(join(runDir, "attempt.json"), JSON.stringify({ attempt: 2, startedAt: new Date(0).toISOString(), stdoutOffset: opts.offset ?? 0 }));
  if (opts.lora !== null) {
    mkdirSync(join(runDir, "out"), { recursive: true });
    writeFileSync(output, opts.lora ?? tinyLora());
  }
  return output;
}

const done = (path: string, steps = 8) => JSON.stringify({ type: "done", result: { path, steps } });
const progress = (n: number) => JSON.stringify({ type: "progress", task: "train", current: n, total: 8 });

describe("reconcile judges a run whose supervisor died from its folder", () => {
  const cases: { name: string; setup: (runDir: string) => void; state: string; step?: number; code?: string; output?: boolean }[] = [
    {
      name: "the worker's done line and a good LoRA: succeeded with the final step",
      setup: (d) => workerJob(d, [progress(7), done(join(d, "out", "lora.safetensors"))]),
      state: "succeeded",
      step: 8,
      output: true,
    },
    {
      name: "a done line whose LoRA is truncated: failed E_NO_OUTPUT",
      setup: (d) => workerJob(d, [done(join(d, "out", "lora.safetensors"))], { lora: tinyLora().subarray(0, 40) }),
      state: "failed",
      code: "E_NO_OUTPUT",
    },
    {
      name: "the worker's coded error line: failed with that code",
      setup: (d) => workerJob(d, [progress(3), JSON.stringify({ type: "error", code: "E_TRAIN_DIVERGED", message: "nan" })], { lora: null }),
      state: "failed",
      code: "E_TRAIN_DIVERGED",
    },
    {
      name: "a cancelled worker: interrupted (resumable)",
      setup: (d) => workerJob(d, [progress(3), JSON.stringify({ type: "error", code: "E_CANCELLED", message: "cancelled" })], { lora: null }),
      state: "interrupted",
      code: "E_WORKER_CRASHED",
    },
    {
      name: "no final line (killed mid-step, torn last line): interrupted",
      setup: (d) => workerJob(d, [progress(3), '{"type":"do'], { lora: null }),
      state: "interrupted",
      code: "E_WORKER_CRASHED",
    },
    {
      name: "an earlier attempt's done line before this attempt's offset does not count",
      setup: (d) => {
        const first = done(join(d, "out", "lora.safetensors"));
        workerJob(d, [first, progress(3)], { offset: first.length + 1 });
      },
      state: "interrupted",
      code: "E_WORKER_CRASHED",
    },
    {
      name: "kohya: the final LoRA written during this attempt: succeeded with the planned steps",
      setup: (d) => {
        const output = join(d, "txcl.safetensors");
        writeFileSync(join(d, "job.json"), JSON.stringify({ kind: "process", parser: "kohya", output, totalSteps: 8 }));
        writeFileSync(join(d, "attempt.json"), JSON.stringify({ attempt: 1, startedAt: new Date(Date.now() - 60_000).toISOString(), stdoutOffset: 0 }));
        writeFileSync(output, tinyLora());
      },
      state: "succeeded",
      step: 8,
      output: true,
    },
    {
      name: "kohya: a LoRA older than the attempt is not this attempt's output",
      setup: (d) => {
        const output = join(d, "txcl.safetensors");
        writeFileSync(join(d, "job.json"), JSON.stringify({ kind: "process", parser: "kohya", output, totalSteps: 8 }));
        writeFileSync(join(d, "attempt.json"), JSON.stringify({ attempt: 1, startedAt: new Date().toISOString(), stdoutOffset: 0 }));
        writeFileSync(output, tinyLora());
        utimesSync(output, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
      },
      state: "interrupted",
      code: "E_WORKER_CRASHED",
    },
  ];
  it.each(cases)("$name", ({ setup, state, step, code, output }) => {
    const store = openRunStore({ projectDir: project() });
    const run = deadRun(store, setup);
    store.reconcile({ isAlive: dead });
    const after = store.get(run.id);
    expect(after.state).toBe(state);
    if (step !== undefined) expect(after.step).toBe(step);
    if (code) expect(after.errorCode).toBe(code);
    if (output) expect(after.outputPath).toMatch(/\.safetensors$/);
    else expect(after.outputPath).toBeNull();
    store.close();
  });

  it("repairs a run already marked interrupted (E_WORKER_CRASHED) whose trainer went on to finish", () => {
    const store = openRunStore({ projectDir: project() });
    const run = deadRun(store, (d) => workerJob(d, [done(join(d, "out", "lora.safetensors"))]), "interrupted");
    expect(store.reconcile({ isAlive: dead }).map((r) => r.id)).toEqual([run.id]);
    expect(store.get(run.id)).toMatchObject({ state: "succeeded", step: 8, errorCode: null });
    store.close();
  });

  it("a live trainer is left alone whatever the folder says", () => {
    const store = openRunStore({ projectDir: project() });
    const run = deadRun(store, (d) => workerJob(d, [done(join(d, "out", "lora.safetensors"))]));
    expect(store.reconcile({ isAlive: () => true })).toEqual([]);
    expect(store.get(run.id).state).toBe("running");
    store.close();
  });

  it("reads nothing into a folder without job.json", () => {
    expect(judgeFromDisk(project())).toBeUndefined();
  });
});
