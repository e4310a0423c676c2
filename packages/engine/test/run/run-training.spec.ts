import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { createFalRunner } from "@loraspec/engine/fal/create-fal-runner.js";
import { followRunLog } from "@loraspec/engine/run/follow-run-log.js";
import { openRunStore, type RunRecord } from "@loraspec/engine/run/run-store.js";
import { newestKohyaState, resumeRun, startRun } from "@loraspec/engine/run/run-training.js";
import { stopRun } from "@loraspec/engine/run/stop-run.js";
import type { LineParser } from "@loraspec/engine/run/supervise-process.js";
import type { ProcessJob } from "@loraspec/engine/run/train-job.js";
import { startFalEmulator } from "../emulators/fal-emulator.js";
import { tempDirsPerTest } from "../test-helpers.js";

const fakeTrainer = fileURLToPath(new URL("./fixtures/fake-trainer.mjs", import.meta.url));

// sd-scripts-shaped lines (the real parser lives in the core and is tested on recorded logs).
const kohya: LineParser = (line) => {
  const bar = /(\d+)\/(\d+) \[[^\]]*avr_loss=([^\],\s]+)\]/.exec(line);
  if (bar) {
    return [
      { type: "progress", task: "train", current: Number(bar[1]), total: Number(bar[2]) },
      { type: "loss", step: Number(bar[1]), loss: Number(bar[3]) },
    ];
  }
  const save = /saving checkpoint: (.+)$/.exec(line);
  return save ? [{ type: "checkpoint", step: 0, path: save[1]! }] : [];
};

const project = tempDirsPerTest("loraspec-train-");

function fakeJob(dir: string, mode: string, extra: string[] = []): ProcessJob {
  const out = join(dir, "out");
  return {
    kind: "process",
    trainer: "kohya",
    command: process.execPath,
    args: [fakeTrainer, "--mode", mode, "--output_dir", out, "--output_name", "txcl", ...extra],
    cwd: dir,
    files: { "args.toml": 'output_name = "txcl"\n' },
    parser: "kohya",
    output: join(out, "txcl.safetensors"),
    resume: { kind: "kohya-state", outputDir: out, outputName: "txcl" },
    totalSteps: 6,
  };
}

async function drive(gen: AsyncGenerator<LoraspecEvent, RunRecord>, onEvent?: (e: LoraspecEvent) => void) {
  const events: LoraspecEvent[] = [];
  let next = await gen.next();
  while (!next.done) {
    events.push(next.value);
    onEvent?.(next.value);
    next = await gen.next();
  }
  return { run: next.value, events };
}

async function driveError(gen: AsyncGenerator<LoraspecEvent, RunRecord>, onEvent?: (e: LoraspecEvent) => void) {
  try {
    await drive(gen, onEvent);
  } catch (error) {
    return error as { code: string; message: string; hint?: string };
  }
  throw new Error("expected the run to fail");
}

const common = { textParsers: { kohya }, pollMs: 20 };

describe("startRun / resumeRun with a fake sd-scripts trainer", () => {
  it("records a successful run: folder files, events.jsonl, store row with the LoRA", async () => {
    const dir = project();
    let created: RunRecord | undefined;
    const { run, events } = await drive(
      startRun({ ...common, projectDir: dir, job: fakeJob(dir, "ok"), plan: { steps: 6 }, base: "sdxl", onCreated: (r) => (created = r) }),
    );
    expect(created?.id).toBe(run.id);
    expect(run).toMatchObject({ state: "succeeded", trainer: "kohya", base: "sdxl", step: 6, totalSteps: 6, exitCode: 0, attempts: 1 });
    expect(run.outputPath).toBe(join(dir, "out", "txcl.safetensors"));
    for (const f of ["plan.json", "job.json", "args.toml", "events.jsonl", "run.log", "stdout.log", "stderr.log"]) {
      expect(existsSync(join(run.runDir, f)), f).toBe(true);
    }
    const recorded = readFileSync(join(run.runDir, "events.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(recorded.map((e) => e.type)).toEqual(events.map((e) => e.type));
    expect(events.at(-1)).toMatchObject({ type: "done", result: { state: "succeeded", lora: run.outputPath } });
    const lines: string[] = [];
    await followRunLog({ projectDir: dir, runId: run.id, write: (t) => lines.push(t) });
    expect(lines.join("")).toContain("6/6");
  });

  it("a follower host of a multi-host run (node_rank > 0) succeeds without a LoRA of its own", async () => {
    const dir = project();
    const done = JSON.stringify({ type: "done", result: { processes: 2, nodeRank: 1, follower: true } });
    const job: ProcessJob = {
      kind: "process",
      trainer: "diffusers",
      command: process.execPath,
      args: ["-e", `console.log(${JSON.stringify(done)})`],
      cwd: dir,
      files: {},
      parser: "worker-jsonl",
      output: join(dir, "out", "lora.safetensors"),
      resume: { kind: "none" },
      totalSteps: 6,
    };
    const { run, events } = await drive(startRun({ ...common, projectDir: dir, job, plan: { steps: 6 }, base: "sdxl" }));
    expect(run).toMatchObject({ state: "succeeded", outputPath: null });
    expect(events.at(-1)).toMatchObject({ type: "done", result: { state: "succeeded", lora: null, trainer: { follower: true, nodeRank: 1 } } });
  });

  it("out of memory with a fallback: the run retries with the next job and succeeds", async () => {
    const dir = project();
    const attempts: number[] = [];
    const { run, events } = await drive(
      startRun({
        ...common,
        projectDir: dir,
        job: fakeJob(dir, "oom"),
        onOutOfMemory: async (attempt) => {
          attempts.push(attempt);
          return attempt === 1 ? { note: "gradient_checkpointing (gradient_checkpointing: true)", job: () => fakeJob(dir, "ok") } : undefined;
        },
      }),
    );
    expect(attempts).toEqual([1]);
    expect(run).toMatchObject({ state: "succeeded", attempts: 2 });
    expect(events.some((e) => e.type === "warning" && e.code === "OOM_FALLBACK")).toBe(true);
    expect(readFileSync(join(run.runDir, "job.json"), "utf8")).toContain('"ok"');
  });

  it("out of memory with no fallback left fails with E_OUT_OF_MEMORY", async () => {
    const dir = project();
    const error = await driveError(startRun({ ...common, projectDir: dir, job: fakeJob(dir, "oom"), onOutOfMemory: async () => undefined }));
    expect(error.code).toBe("E_OUT_OF_MEMORY");
  });

  it("logs -f follows a live run and ends when the run does", async () => {
    const dir = project();
    const store = openRunStore({ projectDir: dir });
    const job = fakeJob(dir, "ok", ["--steps", "30", "--delay_ms", "20"]);
    let followed: Promise<void> | undefined;
    const text: string[] = [];
    const { run } = await drive(startRun({ ...common, projectDir: dir, job, store }), (e) => {
      if (e.type === "progress" && e.current === 2 && !followed) {
        followed = followRunLog({ projectDir: dir, runId: store.list()[0]!.id, follow: true, pollMs: 20, write: (t) => text.push(t) });
      }
    });
    await followed;
    expect(run.state).toBe("succeeded");
    const all = text.join("");
    expect(all).toContain("1/30");
    expect(all).toContain("30/30");
    expect(all).toContain("model saved.");
    store.close();
  });

  const failures: [string, string][] = [
    ["nolora", "E_NO_OUTPUT"],
    ["oom", "E_OUT_OF_MEMORY"],
    ["nan", "E_TRAIN_DIVERGED"],
  ];
  it.each(failures)("a %s run fails with %s and says how to resume", async (mode, code) => {
    const dir = project();
    const error = await driveError(startRun({ ...common, projectDir: dir, job: fakeJob(dir, mode, ["--steps", mode === "nan" ? "200" : "6"]) }));
    expect(error.code).toBe(code);
    expect(error.hint).toMatch(/loraspec train --resume \w+/);
    const store = openRunStore({ projectDir: dir });
    const [run] = store.list();
    expect(run).toMatchObject({ state: "failed", errorCode: code });
    store.close();
    const recorded = readFileSync(join(run!.runDir, "events.jsonl"), "utf8");
    expect(recorded).toContain(`"code":"${code}"`);
  });

  it("an interrupted run resumes from the newest sd-scripts state dir and succeeds", async () => {
    const dir = project();
    const controller = new AbortController();
    const job = fakeJob(dir, "ok", ["--steps", "40", "--save_every", "4", "--delay_ms", "15"]);
    job.totalSteps = 40;
    const error = await driveError(startRun({ ...common, projectDir: dir, job, signal: controller.signal }), (e) => {
      if (e.type === "progress" && e.current === 9) controller.abort();
    });
    expect(error.code).toBe("E_CANCELLED");
    const store = openRunStore({ projectDir: dir });
    const [interrupted] = store.list();
    expect(interrupted).toMatchObject({ state: "interrupted" });
    const state = newestKohyaState(join(dir, "out"), "txcl");
    expect(state).toMatch(/txcl-step0000000(8|9)-state|txcl-step00000012-state/);
    const { run, events } = await drive(resumeRun({ ...common, projectDir: dir, runId: interrupted!.id, store }));
    expect(run).toMatchObject({ state: "succeeded", attempts: 2 });
    const first = events.find((e) => e.type === "progress") as { current: number };
    expect(first.current).toBeGreaterThan(8);
    expect(readFileSync(join(run.runDir, "stdout.log"), "utf8")).toContain("resume training from local state");
    await expect(drive(resumeRun({ ...common, projectDir: dir, runId: run.id, store }))).rejects.toMatchObject({ code: "E_RUN_STATE" });
    store.close();
  });

  it("`stop` from elsewhere ends the run as cancelled, not failed", async () => {
    const dir = project();
    const store = openRunStore({ projectDir: dir });
    const job = fakeJob(dir, "ok", ["--steps", "2000", "--delay_ms", "10"]);
    let stopping: Promise<unknown> | undefined;
    const error = await driveError(startRun({ ...common, projectDir: dir, job, store }), (e) => {
      if (e.type === "progress" && e.current === 3 && !stopping) {
        stopping = stopRun({ projectDir: dir, runId: store.list()[0]!.id });
      }
    });
    const stopped = (await stopping) as { signal: string; run: RunRecord };
    expect(error.code).toBe("E_CANCELLED");
    expect(stopped.signal).toBe("SIGINT");
    expect(store.list()[0]).toMatchObject({ state: "cancelled" });
    await expect(stopRun({ projectDir: dir, runId: store.list()[0]!.id })).rejects.toMatchObject({ code: "E_RUN_STATE" });
    store.close();
  });
});

describe("recorded real sd-scripts logs through the core's parser (packages/core/test/parse/fixtures/kohya)", () => {
  const fixtures = fileURLToPath(new URL("../../../core/test/parse/fixtures/kohya/", import.meta.url));
  const table: [string, { writeLora: boolean; exit: number }, { state: string; code?: string; steps?: number; checkpoints?: number }][] = [
    ["sdxl-6steps-save2.log", { writeLora: true, exit: 0 }, { state: "succeeded", steps: 6, checkpoints: 4 }],
    ["flux1-dev-6steps-save2.log", { writeLora: true, exit: 0 }, { state: "succeeded", steps: 6, checkpoints: 4 }],
    // sd-scripts keeps going on a NaN loss and saves (exit 0, a LoRA on disk): the run still fails.
    ["sdxl-nan-lr1e6.log", { writeLora: true, exit: 0 }, { state: "failed", code: "E_TRAIN_DIVERGED" }],
    ["sdxl-oom.log", { writeLora: false, exit: 1 }, { state: "failed", code: "E_OUT_OF_MEMORY" }],
    // ai-toolkit (composed excerpt): one NaN step it recovers from does not stop the run; the final OOM crash is classified.
    ["ai-toolkit/zimage-excerpt.log", { writeLora: false, exit: 1 }, { state: "failed", code: "E_OUT_OF_MEMORY" }],
  ];
  it.each(table)("%s -> %o", async (log, replay, expected) => {
    const dir = project();
    const file = log.startsWith("ai-toolkit/") ? join(fixtures, "..", log) : join(fixtures, log);
    const job = fakeJob(dir, "replay", ["--log", file, "--write_lora", replay.writeLora ? "1" : "0", "--exit", String(replay.exit)]);
    if (log.startsWith("ai-toolkit/")) job.parser = "ai-toolkit";
    const events: LoraspecEvent[] = [];
    // No parser override: the job's "kohya" parser is the core's parseKohyaLine.
    const gen = startRun({ projectDir: dir, job, pollMs: 20 });
    let error: { code?: string } | undefined;
    try {
      for (let next = await gen.next(); !next.done; next = await gen.next()) events.push(next.value);
    } catch (e) {
      error = e as { code?: string };
    }
    const store = openRunStore({ projectDir: dir });
    expect(store.list()[0]).toMatchObject({ state: expected.state, ...(expected.code ? { errorCode: expected.code } : {}) });
    store.close();
    expect(error?.code).toBe(expected.code);
    if (expected.steps) {
      const steps = events.filter((e) => e.type === "progress" && e.task === "train").map((e) => (e as { current: number }).current);
      expect(Math.max(...steps)).toBe(expected.steps);
      expect(events.filter((e) => e.type === "loss")).toHaveLength(expected.steps);
      expect(events.filter((e) => e.type === "checkpoint")).toHaveLength(expected.checkpoints!);
    }
  });
});

describe("startRun / resumeRun with a fal job", () => {
  it("detaches on abort (interrupted) and a resume re-attaches to the same request", async () => {
    const emulator = await startFalEmulator();
    try {
      const dir = project();
      const falRunner = createFalRunner({ credentials: "k", fetch: emulator.fetch, pollIntervalMs: 5 });
      const controller = new AbortController();
      const job = { kind: "fal" as const, trainer: "fal" as const, endpoint: "fal-ai/flux-lora-fast-training", input: { steps: 10 } };
      const error = await driveError(startRun({ projectDir: dir, job, falRunner, signal: controller.signal }), (e) => {
        if (e.type === "phase" && e.name === "train") controller.abort();
      });
      expect(error.code).toBe("E_CANCELLED");
      const store = openRunStore({ projectDir: dir });
      const [run] = store.list();
      expect(run).toMatchObject({ state: "interrupted", remoteRequestId: emulator.jobs[0]!.id });
      const { run: done } = await drive(resumeRun({ projectDir: dir, runId: run!.id, falRunner, store }));
      expect(done).toMatchObject({ state: "succeeded", outputPath: join(run!.runDir, "lora.safetensors") });
      expect(emulator.jobs).toHaveLength(1);
      const lines: string[] = [];
      await followRunLog({ projectDir: dir, runId: run!.id, write: (t) => lines.push(t) });
      expect(lines.join("")).toContain("Training: step 3/3");
      store.close();
    } finally {
      await emulator.close();
    }
  });

  it("`stop` cancels the fal request; resuming a cancelled run submits a new request", async () => {
    const emulator = await startFalEmulator();
    try {
      const dir = project();
      const falRunner = createFalRunner({ credentials: "k", fetch: emulator.fetch, pollIntervalMs: 5 });
      emulator.progressPolls = 200;
      const store = openRunStore({ projectDir: dir });
      const job = { kind: "fal" as const, trainer: "fal" as const, endpoint: "fal-ai/flux-lora-fast-training", input: { steps: 10 } };
      let stopping: Promise<unknown> | undefined;
      const error = await driveError(startRun({ projectDir: dir, job, falRunner, store }), (e) => {
        if (e.type === "progress" && e.current === 2 && !stopping) stopping = stopRun({ projectDir: dir, runId: store.list()[0]!.id, falRunner });
      });
      await stopping;
      expect(error.code).toBe("E_CANCELLED");
      const [run] = store.list();
      expect(run).toMatchObject({ state: "cancelled" });
      expect(emulator.jobs[0]!.cancelled).toBe(true);
      emulator.progressPolls = 2;
      const { run: done, events } = await drive(resumeRun({ projectDir: dir, runId: run!.id, falRunner, store }));
      expect(done.state).toBe("succeeded");
      expect(emulator.jobs).toHaveLength(2);
      expect(events.some((e) => e.type === "warning" && e.code === "FAL_RESUBMIT")).toBe(true);
      store.close();
    } finally {
      await emulator.close();
    }
  });
});
