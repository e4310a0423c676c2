import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { parse, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { prepareTraining } from "@loraspec/engine/run/prepare-training.js";
import { startRun } from "@loraspec/engine/run/run-training.js";
import { isGroupAlive } from "@loraspec/engine/run/stop-process-group.js";
import type { ProcessJob, TrainJob } from "@loraspec/engine/run/train-job.js";
import { tempDirsPerFile } from "../test-helpers.js";

/**
 * The fault-injection suite (issue 18): real CPU runs of the built-in trainer on a tiny SDXL base
 * through the built CLI, each fault injected as a user or a machine would, each asserting the
 * final state, the files and the step count. fal faults run against the emulator in
 * test/fal/fal-runner.spec.ts and test/fal/train-fal-cli.spec.ts. Steps are paced with
 * LORASPEC_TEST_STEP_DELAY_S so the fault lands mid-run; one torch thread.
 */
const root = fileURLToPath(new URL("../../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
const python = join(root, "worker", ".venv", "bin", "python");
const haveWorker = existsSync(python);
const STEPS = 8;
const env = { ...process.env, CI: "1", NO_COLOR: "1", OMP_NUM_THREADS: "1", LORASPEC_TEST_STEP_DELAY_S: "0.3" };

let shared: string;
let base: string;
let dataset: string;

/** The `{"ok": false, "error": ...}` objects a `--json` command printed on stdout. */
function jsonErrors(stdout: string): Record<string, unknown>[] {
  return stdout
    .split("\n")
    .filter((l) => l.trim().startsWith("{"))
    .map((l) => JSON.parse(l) as { ok?: boolean; error?: Record<string, unknown> })
    .filter((e) => e.ok === false)
    .map((e) => e.error!);
}

function contract(over: Record<string, unknown> = {}) {
  return {
    version: 1,
    name: "tiny-faults",
    base: { model: "sdxl", path: base },
    trainer: { name: "diffusers" },
    hardware: { kind: "local" },
    target: "character",
    dataset: { path: dataset, resolution: 64 },
    captions: { style: "natural" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: STEPS, rank: 4, alpha: 4, optimizer: "adamw", precision: "fp32", gradient_checkpointing: false, save_every: 2, ...over },
    failure: { on_divergence: "stop", on_oom: "fail" },
    lint: { accept: [{ rule: "dataset-below-minimum", why: "a fault-injection test of the run machinery on a few images" }] },
  };
}

/** Each test's project folder, removed when this file's tests are done. */
const tempDir = tempDirsPerFile("loraspec-faults-");

function project(at?: string): string {
  const dir = at ?? tempDir();
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "lora.yaml"), stringify(contract()));
  return dir;
}

beforeAll(async () => {
  if (!haveWorker) return;
  shared = mkdtempSync(join(tmpdir(), "loraspec-faults-shared-"));
  base = join(shared, "tiny-sdxl");
  const made = spawnSync(python, ["-m", "loraspec_worker", "make-tiny-base", "--arch", "sdxl", "--out", base], { cwd: join(root, "worker"), encoding: "utf8", env });
  if (made.status !== 0) throw new Error(`make-tiny-base failed: ${made.stderr}`);
  dataset = join(shared, "dataset");
  mkdirSync(dataset);
  for (let i = 0; i < 4; i++) {
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 40 * i, g: 200 - 30 * i, b: 90 } } }).png().toFile(join(dataset, `img${i}.png`));
    writeFileSync(join(dataset, `img${i}.txt`), `txcl, a photo of a small square number ${i}`);
  }
}, 120_000);
afterAll(() => {
  if (shared) rmSync(shared, { recursive: true, force: true });
});

type Cli = { status: number | null; stdout: string; stderr: string };
function cli(cwd: string, args: string[]): Cli {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: "utf8", env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Row {
  id: string;
  state: string;
  pid: number | null;
  step: number | null;
  attempts: number;
  outputPath: string | null;
  errorCode: string | null;
  runDir: string;
}
function newest(cwd: string): Row {
  const r = cli(cwd, ["runs", "--json"]);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout).runs[0];
}

/** `loraspec train --yes --json`, resolved once `checkpoints` checkpoint events were printed. */
function trainUntil(cwd: string, checkpoints = 1): Promise<{ child: ChildProcess; exit: Promise<number | null>; output: () => Cli }> {
  const child = spawn(process.execPath, [bin, "train", "lora.yaml", "--yes", "--json"], { cwd, env });
  let stdout = "";
  let stderr = "";
  const exit = new Promise<number | null>((r) => child.once("exit", (code, signal) => r(code ?? (signal ? 128 : null))));
  child.stderr!.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (d) => {
      stdout += d;
      if ((stdout.match(/"type":"checkpoint"/g) ?? []).length >= checkpoints) resolve({ child, exit, output: () => ({ status: null, stdout, stderr }) });
    });
    void exit.then((code) => reject(new Error(`train exited (${code}) before ${checkpoints} checkpoint(s): ${stderr}`)));
  });
}

async function waitGone(pid: number | null): Promise<void> {
  for (let i = 0; i < 300 && pid && isGroupAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  if (pid) expect(isGroupAlive(pid)).toBe(false);
}

const checkpointDirs = (run: Row) => {
  const dir = join(run.runDir, "output", "checkpoints");
  return existsSync(dir) ? readdirSync(dir).sort() : [];
};
const tempFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tempFiles(join(dir, e.name)) : /\.tmp-\d+$/.test(e.name) ? [join(dir, e.name)] : []));

describe.skipIf(!haveWorker)("fault injection: real CPU runs (tiny SDXL)", () => {
  it("kill -9 of `loraspec train` while the worker finishes: succeeded, with the LoRA and the final step", async () => {
    const dir = project();
    const { child, exit } = await trainUntil(dir);
    child.kill("SIGKILL");
    await exit;
    const running = newest(dir);
    expect(running.state).toBe("running");
    await waitGone(running.pid);
    const done = newest(dir);
    expect(done).toMatchObject({ id: running.id, state: "succeeded", step: STEPS, attempts: 1, errorCode: null });
    expect(existsSync(done.outputPath!)).toBe(true);
  }, 300_000);

  it("SIGINT, then the newest checkpoint truncated: resume falls back to the one before, names the bad one, finishes", async () => {
    const dir = project();
    const { child, exit } = await trainUntil(dir, 2);
    child.kill("SIGINT");
    expect(await exit).toBe(130);
    const stopped = newest(dir);
    expect(stopped.state).toBe("interrupted");
    expect(stopped.step).toBeLessThan(STEPS);
    const dirs = checkpointDirs(stopped);
    expect(dirs.length).toBeGreaterThanOrEqual(2);
    const bad = dirs.at(-1)!;
    truncateSync(join(stopped.runDir, "output", "checkpoints", bad, "state.pt"), 64);
    const resumed = cli(dir, ["train", "--resume", stopped.id, "--yes", "--json"]);
    expect(resumed.status, resumed.stdout + resumed.stderr).toBe(0);
    const events = resumed.stdout.trim().split("\n").map((l) => JSON.parse(l) as LoraspecEvent);
    const warning = events.find((e) => e.type === "warning" && e.code === "W_CHECKPOINT_CORRUPT");
    expect(warning && "message" in warning ? warning.message : "").toContain(bad);
    const done = newest(dir);
    expect(done).toMatchObject({ id: stopped.id, state: "succeeded", step: STEPS, attempts: 2 });
    expect(tempFiles(done.runDir)).toEqual([]);
  }, 300_000);

  it("`loraspec stop`: cancelled, checkpoint kept, the trainer's group gone", async () => {
    const dir = project();
    const { exit } = await trainUntil(dir);
    const run = newest(dir);
    const stop = cli(dir, ["stop", run.id]);
    expect(stop.status, stop.stderr).toBe(0);
    expect(await exit).toBe(130);
    await waitGone(run.pid);
    const after = newest(dir);
    expect(after).toMatchObject({ id: run.id, state: "cancelled", outputPath: null });
    expect(checkpointDirs(after).length).toBeGreaterThanOrEqual(1);
  }, 300_000);

  it("kill -9 of the worker; a rank change is refused; the fixed learning rate resumes and is recorded", async () => {
    const dir = project();
    const { exit, output } = await trainUntil(dir);
    const run = newest(dir);
    process.kill(-run.pid!, "SIGKILL");
    expect(await exit).toBe(4);
    // --json: the error is one JSON object on stdout (printed once, with its fix as the hint).
    const errors = jsonErrors(output().stdout);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: "E_TRAINER_FAILED", message: expect.stringMatching(/SIGKILL/), hint: expect.any(String) });
    expect(output().stderr).not.toMatch(/fix:/);
    const failed = newest(dir);
    expect(failed).toMatchObject({ id: run.id, state: "failed", errorCode: "E_TRAINER_FAILED" });
    const yaml = parse(readFileSync(join(dir, "lora.yaml"), "utf8"));
    writeFileSync(join(dir, "lora.yaml"), stringify({ ...yaml, hyperparameters: { ...yaml.hyperparameters, rank: 8 } }));
    const refused = cli(dir, ["train", "--resume", run.id, "--yes"]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toMatch(/E_CONTRACT_INVALID.*rank 4 -> 8/s);
    expect(newest(dir)).toMatchObject({ state: "failed", attempts: 1 });
    writeFileSync(join(dir, "lora.yaml"), stringify({ ...yaml, hyperparameters: { ...yaml.hyperparameters, learning_rate: 1.5e-4 } }));
    const resumed = cli(dir, ["train", "--resume", run.id, "--yes", "--json"]);
    expect(resumed.status, resumed.stdout + resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain("RESUME_CHANGES");
    const request = JSON.parse(readFileSync(join(run.runDir, "worker-request.json"), "utf8"));
    expect(request.learning_rate).toBe(1.5e-4);
    expect(readFileSync(join(run.runDir, "resume-changes.jsonl"), "utf8")).toContain("learningRate");
    expect(newest(dir)).toMatchObject({ state: "succeeded", step: STEPS, attempts: 2 });
  }, 300_000);

  it("a NaN loss (injected at step 3 of an fp32 run): failed E_TRAIN_DIVERGED, no LoRA, no bf16 advice", async () => {
    const dir = project();
    const prepared = await prepareTraining({ path: join(dir, "lora.yaml") });
    const job = async (run: Parameters<typeof prepared.job>[0]): Promise<TrainJob> => {
      const built = (await prepared.job(run)) as ProcessJob;
      const request = JSON.parse(built.files!["worker-request.json"]!);
      built.files!["worker-request.json"] = JSON.stringify({ ...request, debug: { inject_nan_at_step: 3 } });
      built.env = { ...built.env, OMP_NUM_THREADS: "1" };
      return built;
    };
    let error: { code?: string; hint?: string } | undefined;
    try {
      for await (const _ of startRun({ projectDir: dir, job, trainer: "diffusers", plan: prepared.plan, pollMs: 50 })) void _;
    } catch (e) {
      error = e as typeof error;
    }
    expect(error?.code).toBe("E_TRAIN_DIVERGED");
    expect(error?.hint ?? "").not.toMatch(/bf16 instead of fp16/);
    const run = newest(dir);
    expect(run).toMatchObject({ state: "failed", errorCode: "E_TRAIN_DIVERGED", outputPath: null });
    expect(run.step ?? 0).toBeLessThan(STEPS);
    expect(existsSync(join(run.runDir, "output", "tiny-faults.safetensors"))).toBe(false);
  }, 300_000);

  it("Ctrl-C of `loraspec ui` while a run it started trains: the run is stopped and recorded cancelled, the store closed cleanly", async () => {
    const dir = project();
    const ui = spawn(process.execPath, [bin, "ui", "--no-open", "--port", "0"], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    ui.stderr!.on("data", (d) => (stderr += d));
    const exit = new Promise<number | null>((r) => ui.once("exit", (code) => r(code)));
    const url = await new Promise<URL>((resolve, reject) => {
      let out = "";
      ui.stdout!.on("data", (d) => {
        out += d;
        const line = out.split("\n").find((l) => l.startsWith("http"));
        if (line) resolve(new URL(line.trim()));
      });
      void exit.then((code) => reject(new Error(`ui exited ${code}: ${stderr}`)));
    });
    const headers = { Authorization: `Bearer ${url.searchParams.get("token")}`, "Content-Type": "application/json" };
    const started = await fetch(new URL("/api/runs", url), { method: "POST", headers, body: "{}" });
    expect(started.status, await started.clone().text()).toBe(201);
    const { id } = (await started.json()) as { id: string };
    const runDir = join(dir, ".loraspec", "runs", id);
    for (let i = 0; i < 600 && !(existsSync(join(runDir, "events.jsonl")) && readFileSync(join(runDir, "events.jsonl"), "utf8").includes('"checkpoint"')); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const trainer = newest(dir);
    expect(trainer).toMatchObject({ id, state: "running" });
    ui.kill("SIGINT");
    expect(await exit).toBe(0);
    expect(stderr).not.toMatch(/not open|internal error/);
    expect(isGroupAlive(trainer.pid!)).toBe(false);
    const after = newest(dir);
    expect(after).toMatchObject({ id, state: "cancelled", outputPath: null });
    expect(after.step).toBeLessThan(STEPS);
    expect(checkpointDirs(after).length).toBeGreaterThanOrEqual(1);
  }, 300_000);

  // A real full disk: the project's .loraspec on a 3 MiB tmpfs, filled after the first checkpoint.
  const canMount = process.getuid?.() === 0 && spawnSync("mount", ["--version"]).status === 0;
  it.skipIf(!canMount)("the disk fills mid-run: E_DISK_FULL (no stack), `runs` works, no row left running; after freeing space --resume finishes", async () => {
    const mnt = mkdtempSync(join(tmpdir(), "loraspec-faults-full-"));
    expect(spawnSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt]).status).toBe(0);
    try {
      const dir = project(join(mnt, "p"));
      const { exit, output } = await trainUntil(dir);
      const filler = join(mnt, "filler");
      try {
        writeFileSync(filler, Buffer.alloc(8 * 2 ** 20));
      } catch {
        // full to the last byte
      }
      const code = await exit;
      expect(code).toBe(4);
      expect(jsonErrors(output().stdout)).toEqual([expect.objectContaining({ code: "E_DISK_FULL" })]);
      expect(output().stderr).not.toMatch(/internal error|at .*\.mjs:\d+/);
      const listed = cli(dir, ["runs", "--json"]);
      expect(listed.status, listed.stderr).toBe(0);
      const run = JSON.parse(listed.stdout).runs[0] as Row;
      await waitGone(run.pid);
      const settled = newest(dir);
      expect(["failed", "interrupted"]).toContain(settled.state);
      rmSync(filler);
      const resumed = cli(dir, ["train", "--resume", run.id, "--yes"]);
      expect(resumed.status, resumed.stdout + resumed.stderr).toBe(0);
      expect(newest(dir)).toMatchObject({ state: "succeeded", step: STEPS, attempts: 2 });
    } finally {
      spawnSync("umount", ["-l", mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  }, 300_000);
});
