import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isGroupAlive } from "@loraspec/engine/run/stop-process-group.js";

/**
 * The Done-when for `trainer: diffusers`, end to end through the built CLI and the real
 * worker on a tiny SDXL base made here: train succeeds; loraspec killed mid-run leaves the run
 * interrupted and `train --resume` finishes it.
 */
const root = fileURLToPath(new URL("../../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
const python = join(root, "worker", ".venv", "bin", "python");
const haveWorker = existsSync(python);

let project: string;
beforeAll(async () => {
  if (!haveWorker) return;
  project = mkdtempSync(join(tmpdir(), "loraspec-e2e-"));
  const made = spawnSync(python, ["-m", "loraspec_worker", "make-tiny-base", "--arch", "sdxl", "--out", join(project, "tiny-sdxl")], {
    cwd: join(root, "worker"),
    encoding: "utf8",
  });
  if (made.status !== 0) throw new Error(`make-tiny-base failed: ${made.stderr}`);
  const dataset = join(project, "dataset");
  mkdirSync(dataset);
  for (let i = 0; i < 4; i++) {
    await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 40 * i, g: 200 - 30 * i, b: 90 } } })
      .png()
      .toFile(join(dataset, `img${i}.png`));
    writeFileSync(join(dataset, `img${i}.txt`), `txcl, a photo of a small square number ${i}`);
  }
  const contract = {
    version: 1,
    name: "tiny-e2e",
    base: { model: "sdxl", path: "./tiny-sdxl" },
    trainer: { name: "diffusers" },
    hardware: { kind: "local" },
    target: "character",
    dataset: { path: "./dataset", resolution: 64 },
    captions: { style: "natural" },
    trigger: { word: "txcl" },
    hyperparameters: {
      learning_rate: 1e-4,
      steps: 8,
      rank: 4,
      alpha: 4,
      optimizer: "adamw",
      precision: "fp32",
      gradient_checkpointing: false,
      save_every: 2,
    },
    // Samples at steps 4 and 8: the rubric's default prompt, seed 42, 2 inference steps (cheap).
    samples: { every: 4, steps: 2, guidance: 1 },
    // a handful of images keeps the test fast; check would refuse fewer than 15 for a character
    lint: { accept: [{ rule: "dataset-below-minimum", why: "a test of the train machinery on a few images" }] },
  };
  writeFileSync(join(project, "lora.yaml"), stringify(contract));
}, 120_000);
afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: project, encoding: "utf8", env: { ...process.env, CI: "1", NO_COLOR: "1" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function runs(): Array<{ id: string; state: string; pid: number | null; attempts: number; outputPath: string | null; step: number | null }> {
  const r = cli(["runs", "--json"]);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout).runs;
}

/** Starts `loraspec train --yes --json` and resolves once a checkpoint event was printed. */
function trainUntilCheckpoint(): Promise<{ child: ChildProcess; exit: Promise<number | null> }> {
  const child = spawn(process.execPath, [bin, "train", "lora.yaml", "--yes", "--json"], {
    cwd: project,
    // Paced (worker test hook) so the run is still going when the test interrupts it: unpaced, the
    // tiny model finishes its 8 steps within a fraction of a second on an idle machine.
    env: { ...process.env, CI: "1", NO_COLOR: "1", LORASPEC_TEST_STEP_DELAY_S: "0.3" },
  });
  const exit = new Promise<number | null>((r) => child.once("exit", (code, signal) => r(code ?? (signal ? 128 : null))));
  return new Promise((resolve, reject) => {
    let buffered = "";
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    child.stdout!.on("data", (d) => {
      buffered += d;
      if (buffered.includes('"type":"checkpoint"')) resolve({ child, exit });
    });
    void exit.then((code) => reject(new Error(`train exited (${code}) before a checkpoint: ${stderr}`)));
  });
}

describe.skipIf(!haveWorker)("loraspec train with the real worker (tiny SDXL, CPU)", () => {
  it("Ctrl-C mid-run stops the trainer and leaves the run interrupted; --resume finishes it", async () => {
    const { child, exit } = await trainUntilCheckpoint();
    child.kill("SIGINT");
    expect(await exit).toBe(130);
    const [interrupted] = runs();
    expect(interrupted).toMatchObject({ state: "interrupted" });
    expect(isGroupAlive(interrupted!.pid!)).toBe(false);

    const resumed = cli(["train", "--resume", interrupted!.id, "--yes", "--json"]);
    expect(resumed.status, resumed.stderr).toBe(0);
    const events = resumed.stdout.trim().split("\n").map((l) => JSON.parse(l));
    const firstStep = events.find((e) => e.type === "progress" && e.task === "train")?.current;
    expect(firstStep).toBeGreaterThan(2);
    const [done] = runs();
    expect(done).toMatchObject({ id: interrupted!.id, state: "succeeded", attempts: 2, step: 8 });
    expect(existsSync(done!.outputPath!)).toBe(true);
    // The samples of the resumed attempt reach the event stream, written beside the LoRA.
    const last = events.find((e) => e.type === "sample" && e.step === 8);
    expect(last).toMatchObject({ prompt: "a photo of txcl", seed: 42 });
    expect(last.path).toMatch(/output[\/]samples[\/]step-000008-p0-s42\.png$/);
    expect(existsSync(last.path)).toBe(true);
    const log = cli(["logs", done!.id]);
    expect(log.stdout).toContain('"type": "checkpoint"');
  }, 400_000);

  it("SIGKILL of loraspec: the trainer outlives it (run still running); once the trainer is gone too the run is interrupted and --resume finishes it", async () => {
    const { child, exit } = await trainUntilCheckpoint();
    child.kill("SIGKILL");
    await exit;
    const running = runs()[0]!;
    expect(running.state).toBe("running");
    expect(isGroupAlive(running.pid!)).toBe(true);
    // With its supervisor gone, `logs` reads the trainer's own files (they keep growing).
    expect(cli(["logs", running.id]).stdout).toContain('"type": "checkpoint"');
    // The machine "crashes" for the trainer too.
    process.kill(-running.pid!, "SIGKILL");
    for (let i = 0; i < 50 && isGroupAlive(running.pid!); i++) await new Promise((r) => setTimeout(r, 100));
    const [interrupted] = runs();
    expect(interrupted).toMatchObject({ id: running.id, state: "interrupted" });
    const resumed = cli(["train", "--resume", running.id, "--yes"]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/succeeded\. LoRA: .*\.safetensors/);
    expect(runs()[0]).toMatchObject({ state: "succeeded", attempts: 2 });
  }, 400_000);

  it("stop and logs give clear errors for unknown or finished runs", () => {
    const unknown = cli(["stop", "nope"]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("E_RUN_NOT_FOUND");
    const finished = cli(["stop", runs()[0]!.id]);
    expect(finished.status).toBe(2);
    expect(finished.stderr).toContain("E_RUN_STATE");
    const table = cli(["runs"]);
    expect(table.stdout).toMatch(/succeeded\s+diffusers\s+sdxl\s+8\/8/);
  });
});
