import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { superviseProcess, type LineParser, type ProcessOutcome } from "@loraspec/engine/run/supervise-process.js";
import { verifyLoraOutput } from "@loraspec/engine/run/verify-lora-output.js";
import { isGroupAlive } from "@loraspec/engine/run/stop-process-group.js";
import { nanHint } from "@loraspec/engine/run/supervision-policy.js";
import { tempDirsPerTest } from "../test-helpers.js";

const fakeTrainer = fileURLToPath(new URL("./fixtures/fake-trainer.mjs", import.meta.url));

// The supervisor's job is plumbing, not parsing: a minimal sd-scripts-shaped parser is enough here
// (the real parsers are tested in packages/core/test/parse against recorded logs).
const parse: LineParser = (line) => {
  const events: LoraspecEvent[] = [];
  const bar = /(\d+)\/(\d+) \[[^\]]*avr_loss=([^\],\s]+)\]/.exec(line);
  if (bar) {
    const step = Number(bar[1]);
    events.push({ type: "progress", task: "train", current: step, total: Number(bar[2]) });
    events.push({ type: "loss", step, loss: Number(bar[3]) });
  }
  const save = /saving checkpoint: (.+)$/.exec(line);
  if (save) events.push({ type: "checkpoint", step: 0, path: save[1]! });
  return events;
};

const tmp = tempDirsPerTest("loraspec-sup-");

async function run(
  mode: string,
  extra: string[] = [],
  options: { signal?: AbortSignal; stopTimeouts?: { interruptMs: number; terminateMs: number }; maxWalltimeMs?: number } = {},
  onEvent?: (event: LoraspecEvent) => void,
) {
  const dir = tmp();
  const runDir = join(dir, "run");
  const out = join(dir, "out");
  const events: LoraspecEvent[] = [];
  const lines: string[] = [];
  let pid = 0;
  const gen = superviseProcess({
    command: process.execPath,
    args: [fakeTrainer, "--mode", mode, "--output_dir", out, ...extra],
    cwd: dir,
    runDir,
    parseLine: parse,
    pollMs: 20,
    onSpawn: (info) => (pid = info.pid),
    onLine: (line) => lines.push(line),
    ...options,
  });
  let next = await gen.next();
  while (!next.done) {
    events.push(next.value);
    onEvent?.(next.value);
    next = await gen.next();
  }
  return { outcome: next.value as ProcessOutcome, events, lines, out, runDir, pid };
}

describe("superviseProcess with a fake sd-scripts trainer", () => {
  it("splits \\r-redrawn tqdm output into one progress+loss per step, reports checkpoints, exits clean", async () => {
    const { outcome, events, out, runDir, pid } = await run("ok", ["--steps", "6", "--save_every", "2"]);
    expect(outcome).toMatchObject({ exitCode: 0, exitSignal: null });
    expect(outcome.failure).toBeUndefined();
    expect(pid).toBeGreaterThan(0);
    const steps = events.filter((e) => e.type === "progress").map((e) => (e as { current: number }).current);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6]);
    const losses = events.filter((e) => e.type === "loss").map((e) => (e as { loss: number }).loss);
    expect(losses[0]).toBeCloseTo(0.39);
    expect(events.filter((e) => e.type === "checkpoint")).toHaveLength(2);
    // The trainer wrote its own logs into the run folder.
    expect(readFileSync(join(runDir, "stderr.log"), "utf8")).toContain("\rsteps:");
    expect(readFileSync(join(runDir, "stdout.log"), "utf8")).toContain("saving checkpoint:");
    const summary = await verifyLoraOutput({ path: join(out, "fake.safetensors") });
    expect(summary).toMatchObject({ tensors: 2, loraTensors: 2 });
  });

  it("stops a run whose loss turns NaN before it can save a broken LoRA", async () => {
    const { outcome, events, out } = await run("nan", ["--steps", "200", "--save_every", "1000"]);
    expect(outcome.stoppedFor).toBe("diverged");
    expect(outcome.stopSignal).toBe("SIGINT");
    expect(outcome.failure?.code).toBe("E_TRAIN_DIVERGED");
    expect(outcome.failure?.hint).toMatch(/bf16/);
    expect(events.some((e) => e.type === "error" && e.code === "E_TRAIN_DIVERGED")).toBe(true);
    expect(existsSync(join(out, "fake.safetensors"))).toBe(false);
  });

  // The advice follows the run's precision: "use bf16 instead of fp16" only where the run is fp16.
  const hints: [string | undefined, boolean][] = [["fp16", true], ["bf16", false], ["fp32", false], [undefined, false]];
  it.each(hints)("a NaN hint for a %s run tells to switch to bf16: %s", (precision, switchToBf16) => {
    const hint = nanHint(precision);
    expect(/use precision bf16 instead of fp16/.test(hint)).toBe(switchToBf16);
    expect(hint).toMatch(/learning rate|learning_rate/);
    if (precision && precision !== "fp16") expect(hint).toContain(`the run is ${precision}`);
  });

  const failures: [string, string, RegExp][] = [
    ["oom", "E_OUT_OF_MEMORY", /gradient_checkpointing/],
    ["crash", "E_TRAINER_FAILED", /loraspec logs/],
  ];
  it.each(failures)("classifies a %s exit as %s with a remedy", async (mode, code, hint) => {
    const { outcome } = await run(mode, ["--steps", "6"]);
    expect(outcome.exitCode).not.toBe(0);
    expect(outcome.failure?.code).toBe(code);
    expect(outcome.failure?.hint).toMatch(hint);
    expect(outcome.lastLines.join("\n")).toMatch(mode === "oom" ? /CUDA out of memory/ : /something unexpected/);
  });

  it("exit 0 without a LoRA is not success: verification fails with E_NO_OUTPUT", async () => {
    const { outcome, out } = await run("nolora", ["--steps", "3"]);
    expect(outcome.exitCode).toBe(0);
    await expect(verifyLoraOutput({ path: join(out, "fake.safetensors") })).rejects.toMatchObject({ code: "E_NO_OUTPUT" });
  });

  it("rejects a truncated LoRA file", async () => {
    const { out } = await run("ok", ["--steps", "2"]);
    const path = join(out, "fake.safetensors");
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, bytes.length - 4));
    await expect(verifyLoraOutput({ path })).rejects.toMatchObject({ code: "E_NO_OUTPUT", message: expect.stringMatching(/outside the file/) });
  });

  it("rejects a LoRA whose tensors hold NaN (a diverged run that still saved)", async () => {
    const { out } = await run("ok", ["--steps", "2"]);
    const path = join(out, "fake.safetensors");
    const bytes = readFileSync(path);
    // The data section is the last 16 bytes (two f32 tensors of 2 values); poison one value.
    bytes.writeFloatLE(Number.NaN, bytes.length - 4);
    writeFileSync(path, bytes);
    await expect(verifyLoraOutput({ path })).rejects.toMatchObject({ code: "E_TRAIN_DIVERGED", hint: expect.stringMatching(/bf16/) });
  });

  it("an abort stops the whole process group gracefully (SIGINT)", async () => {
    const controller = new AbortController();
    // Abort once the trainer printed a step: by then its signal handlers are installed.
    const abortOnStep = (e: LoraspecEvent) => e.type === "progress" && controller.abort();
    const { outcome, pid } = await run("ok", ["--steps", "1000", "--delay_ms", "20"], { signal: controller.signal }, abortOnStep);
    expect(outcome).toMatchObject({ stoppedFor: "abort", stopSignal: "SIGINT", exitCode: 130 });
    expect(outcome.failure).toBeUndefined();
    expect(isGroupAlive(pid)).toBe(false);
  });

  it("escalates to SIGKILL when the trainer ignores SIGINT and SIGTERM", async () => {
    const controller = new AbortController();
    const abortOnStep = (e: LoraspecEvent) => e.type === "progress" && controller.abort();
    const { outcome, pid } = await run(
      "stubborn",
      ["--steps", "1000"],
      { signal: controller.signal, stopTimeouts: { interruptMs: 200, terminateMs: 200 } },
      abortOnStep,
    );
    expect(outcome).toMatchObject({ stoppedFor: "abort", stopSignal: "SIGKILL", exitSignal: "SIGKILL" });
    expect(isGroupAlive(pid)).toBe(false);
  });

  it("stops a trainer that runs past limits.max_walltime_hours with E_TIMEOUT", async () => {
    const { outcome, out } = await run("ok", ["--steps", "1000"], { maxWalltimeMs: 300 });
    expect(outcome).toMatchObject({ stoppedFor: "walltime", stopSignal: "SIGINT" });
    expect(outcome.failure).toMatchObject({ code: "E_TIMEOUT", field: "limits.max_walltime_hours" });
    expect(existsSync(join(out, "fake.safetensors"))).toBe(false);
  });

  it("a command that does not exist is E_WORKER_NOT_INSTALLED", async () => {
    const gen = superviseProcess({ command: "/nonexistent/python", args: [], cwd: tmp(), runDir: join(tmp(), "r"), parseLine: parse });
    await expect(gen.next()).rejects.toMatchObject({ code: "E_WORKER_NOT_INSTALLED" });
  });
});
