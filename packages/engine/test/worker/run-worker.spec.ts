import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { runWorker } from "@loraspec/engine/worker/run-worker.js";
import { setupWorker, type ExecFn } from "@loraspec/engine/worker/setup-worker.js";
import { findWorkerRoot, workerPython } from "@loraspec/engine/worker/worker-paths.js";
import { drain, alive, tempDirsPerFile } from "../test-helpers.js";

/** Temp folders, removed when this file's tests are done. */
const tempDir = tempDirsPerFile("loraspec-worker-");

const python = workerPython(findWorkerRoot());
const haveWorker = existsSync(python);

/** A complete train request (every setting the schema requires) from the worker's own dev helper. */
function devRequest(fields: Record<string, unknown>): Record<string, unknown> {
  const code = "import json, sys; from loraspec_worker.train.dev_request import dev_request; print(json.dumps(dev_request(**json.loads(sys.argv[1]))))";
  const root = findWorkerRoot();
  return JSON.parse(execFileSync(python, ["-c", code, JSON.stringify(fields)], { env: { ...process.env, PYTHONPATH: join(root, "worker") }, encoding: "utf8" }));
}

describe.skipIf(!haveWorker)("runWorker against the real Python worker", () => {
  it("streams events and ends with done", async () => {
    const { events, error } = await drain(runWorker({ command: "selftest", request: { mode: "ok", echo: "hi" } }));
    expect(error).toBeUndefined();
    expect(events.filter((e) => e.type === "progress")).toHaveLength(2);
    const done = events.at(-1);
    expect(done?.type).toBe("done");
    expect((done as unknown as { result: { echo: string } }).result.echo).toBe("hi");
  });

  it.each([
    ["error", "E_DATASET_EMPTY", "selftest: a coded error"],
    ["crash", "E_WORKER_CRASHED", "selftest crash line 2"],
  ])("mode %s becomes %s", async (mode, code, text) => {
    const dir = tempDir();
    const logFile = join(dir, "logs", "worker.log");
    const { error } = await drain(runWorker({ command: "selftest", request: { mode }, logFile }));
    expect(error?.code).toBe(code);
    expect(`${error?.message}\n${JSON.stringify(error?.details)}`).toContain(text);
    if (mode === "crash") expect(readFileSync(logFile, "utf8")).toContain("selftest crash line 0");
  });

  it("an unknown command is a usage error from the worker", async () => {
    const { error } = await drain(runWorker({ command: "no-such-command", request: {} }));
    expect(error?.code).toBe("E_USAGE");
  });

  it("cancel stops the worker and ends with E_CANCELLED", async () => {
    const controller = new AbortController();
    let pid = 0;
    const stream = runWorker({ command: "selftest", request: { mode: "sleep" }, signal: controller.signal, termMs: 2000, killMs: 1000 });
    const events: LoraspecEvent[] = [];
    let error: LoraspecError | undefined;
    try {
      for await (const event of stream) {
        events.push(event);
        if (events.length === 3) controller.abort();
      }
    } catch (e) {
      error = e as LoraspecError;
    }
    expect(error?.code).toBe("E_CANCELLED");
    const ps = events.filter((e) => e.type === "progress") as { message?: string }[];
    expect(ps.length).toBeGreaterThanOrEqual(3);
    pid = Number(ps.at(-1)?.message?.replace("pid ", ""));
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(false);
  });

  it("a consumer that stops early leaves no worker running", async () => {
    const stream = runWorker({ command: "selftest", request: { mode: "sleep" }, killMs: 1000 });
    const first = await stream.next();
    expect(first.value?.type).toBe("progress");
    await stream.return(undefined);
    // the generator's finally sent SIGTERM; give it a moment, then no child of ours is left
    await new Promise((r) => setTimeout(r, 500));
    const { events } = await drain(runWorker({ command: "selftest", request: { mode: "ok" } }));
    expect(events.at(-1)?.type).toBe("done");
  });

  it("trains a tiny FLUX.1 LoRA end to end through the bridge", async () => {
    const dir = tempDir("loraspec-train-");
    const base = join(dir, "base");
    const made = await drain(runWorker({ command: "make-tiny-base", request: { arch: "flux1", out: base, seed: 1 } }));
    expect(made.error).toBeUndefined();
    const dataset = join(dir, "dataset");
    mkdirSync(dataset);
    const sharp = (await import("sharp")).default;
    for (let i = 0; i < 2; i++) {
      await sharp({ create: { width: 40, height: 36, channels: 3, background: { r: 40 * i, g: 120, b: 200 } } })
        .png()
        .toFile(join(dataset, `img${i}.png`));
      writeFileSync(join(dataset, `img${i}.txt`), `a photo of txcl ${i}`);
    }
    const { events, error } = await drain(
      runWorker({
        command: "train",
        request: devRequest({ arch: "flux1", base, dataset, output_dir: join(dir, "out"), resolution: 32, steps: 2, rank: 4, alpha: 4, max_sequence_length: 32, precision: "fp32" }),
      }),
    );
    expect(error).toBeUndefined();
    expect(events.filter((e) => e.type === "loss").map((e) => (e as { step: number }).step)).toEqual([1, 2]);
    const done = events.at(-1) as { type: "done"; result: { path: string } };
    expect(existsSync(done.result.path)).toBe(true);
  });
});

describe("runWorker without a worker", () => {
  it("a missing venv python is E_WORKER_NOT_INSTALLED with the fix", async () => {
    const { error } = await drain(runWorker({ command: "selftest", request: {}, python: "/nonexistent/venv/bin/python" }));
    expect(error?.code).toBe("E_WORKER_NOT_INSTALLED");
    expect(error?.hint).toContain("loraspec setup worker");
  });
});

describe("setupWorker", () => {
  function fakeRoot(): string {
    const root = tempDir("loraspec-setup-");
    mkdirSync(join(root, "worker"));
    writeFileSync(join(root, "worker", "requirements.txt"), "torch==2.13.0\ndiffusers==0.42.1\n");
    writeFileSync(join(root, "worker", "pyproject.toml"), "[project]\nname='x'\n");
    return root;
  }

  function fakeExec(gpu: boolean, calls: string[][]): ExecFn {
    return async (command, args) => {
      calls.push([command, ...args]);
      if (command === "nvidia-smi") {
        return gpu ? { code: 0, stdout: "NVIDIA H200, 143771, 580.159.03\n", stderr: "" } : { code: 127, stdout: "", stderr: "not found" };
      }
      if (args[0] === "-c") return { code: 0, stdout: "3.11\n", stderr: "" };
      if (args[0] === "-m" && args[1] === "venv") {
        mkdirSync(join(args[2]!, "bin"), { recursive: true });
        writeFileSync(join(args[2]!, "bin", "python"), "");
        return { code: 0, stdout: "", stderr: "" };
      }
      if (args.includes("loraspec_worker")) {
        return { code: 0, stdout: `${JSON.stringify({ type: "done", result: { cuda: { available: gpu } } })}\n`, stderr: "" };
      }
      return { code: 0, stdout: "", stderr: "" };
    };
  }

  it.each([
    [true, "cuda", undefined],
    [false, "cpu", "https://download.pytorch.org/whl/cpu"],
  ])("gpu=%s installs the %s torch build", async (gpu, build, index) => {
    const root = fakeRoot();
    const calls: string[][] = [];
    const { events } = await drain(setupWorker({ root, exec: fakeExec(gpu, calls), platform: "linux", basePython: "python3" }));
    const torchInstall = calls.find((c) => c.includes("torch==2.13.0"));
    expect(torchInstall).toBeDefined();
    expect(torchInstall!.includes("--index-url")).toBe(index !== undefined);
    if (index) expect(torchInstall).toContain(index);
    expect(calls.some((c) => c.some((a) => a.startsWith("bitsandbytes==")))).toBe(gpu);
    const done = events.at(-1) as { type: "done"; result: { torchBuild: string; gpu: { name: string } | null } };
    expect(done.result.torchBuild).toBe(build);
    expect(done.result.gpu?.name ?? null).toBe(gpu ? "NVIDIA H200" : null);
    // second run: the stamp matches, nothing is installed again
    const again: string[][] = [];
    await drain(setupWorker({ root, exec: fakeExec(gpu, again), platform: "linux" }));
    expect(again.some((c) => c.includes("install"))).toBe(false);
  });

  it("a failing pip install is E_WORKER_NOT_INSTALLED with its stderr", async () => {
    const root = fakeRoot();
    const calls: string[][] = [];
    const base = fakeExec(false, calls);
    const exec: ExecFn = async (command, args) =>
      args.includes("-r") ? { code: 1, stdout: "", stderr: "ERROR: No matching distribution found for diffusers==0.42.1" } : base(command, args);
    const { error } = await drain(setupWorker({ root, exec, platform: "linux" }));
    expect(error?.code).toBe("E_WORKER_NOT_INSTALLED");
    expect(error?.message).toContain("No matching distribution");
  });
});
