import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { workerLayout, type WorkerLayout } from "./worker-paths.js";

/** Where torch builds come from. Knowledge, not code: each entry says where it was read. */
export const TORCH_BUILDS = {
  /** Linux wheels on PyPI bundle CUDA; macOS wheels on PyPI use MPS. */
  cuda: {
    indexUrl: undefined as string | undefined,
    source: "https://pytorch.org/get-started/locally/ (Linux, pip, CUDA: `pip3 install torch` from PyPI)",
    asOf: "2026-11",
  },
  /** CPU-only Linux wheels (about 200 MB instead of several GB). */
  cpu: {
    indexUrl: "https://download.pytorch.org/whl/cpu" as string | undefined,
    source: "https://pytorch.org/get-started/locally/ (Linux, pip, CPU: --index-url https://download.pytorch.org/whl/cpu)",
    asOf: "2026-11",
  },
} as const;

/** Installed only with the CUDA build on Linux: they need CUDA (adamw8bit is bitsandbytes' AdamW8bit). */
export const GPU_EXTRAS = [
  { name: "bitsandbytes", module: "bitsandbytes", optimizers: ["adamw8bit"], version: "0.50.2", why: "optimizer: adamw8bit", source: "https://pypi.org/project/bitsandbytes/", asOf: "2026-11-29" },
] as const;

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}
export type ExecFn = (command: string, args: string[], options?: { signal?: AbortSignal }) => Promise<ExecResult>;

export interface SetupWorkerParams {
  /** The checkout or package folder holding worker/ (default: found from this module, or $LORASPEC_HOME). */
  root?: string;
  /** Environment for the layout (LORASPEC_CACHE_DIR, XDG_CACHE_HOME); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** The Python that creates the venv (default $LORASPEC_PYTHON or python3). */
  basePython?: string;
  /** Reinstall even when the requirements stamp matches. */
  force?: boolean;
  /** Force the torch build instead of asking nvidia-smi. */
  torch?: "cuda" | "cpu";
  signal?: AbortSignal;
  exec?: ExecFn;
  platform?: NodeJS.Platform;
}

export interface GpuInfo {
  name: string;
  memoryMiB: number;
  driver: string;
}

export const MIN_PYTHON: [number, number] = [3, 10]; // worker/pyproject.toml requires-python

/**
 * What `loraspec setup worker` runs: creates the worker venv (a checkout's worker/.venv, or
 * <cache>/worker/venv for an npm install, see workerLayout), installs torch (the CUDA build when
 * nvidia-smi finds a GPU, else the CPU build on Linux), the pinned requirements and the worker
 * package (editable from a checkout, the shipped wheel from a package), then asks the worker
 * what it sees. Yields phase/log events; done carries the findings.
 */
export async function* setupWorker(params: SetupWorkerParams = {}): AsyncGenerator<LoraspecEvent> {
  const exec = params.exec ?? defaultExec;
  const platform = params.platform ?? process.platform;
  const layout = workerLayout({ root: params.root, env: params.env, platform });
  const { requirements, dataRequirements, python, venv } = layout;
  if (!existsSync(requirements)) {
    throw new LoraspecError("E_FILE_NOT_FOUND", `no worker/requirements.txt under ${layout.root}`, {
      hint: "run from a loraspec checkout or install, or set LORASPEC_HOME",
    });
  }
  const workerInstall = workerInstallArgs(layout);

  yield { type: "phase", name: "detect", message: "looking for an NVIDIA GPU" };
  const gpu = await detectGpu(exec, params.signal);
  const build: "cuda" | "cpu" = params.torch ?? (gpu || platform === "darwin" ? "cuda" : "cpu");
  yield {
    type: "log",
    level: "info",
    message: gpu ? `found ${gpu.name} (${Math.round(gpu.memoryMiB / 1024)} GiB, driver ${gpu.driver})` : "no NVIDIA GPU found",
  };

  const torchPin = await pinnedVersion(requirements, "torch");
  const stampFile = join(venv, WORKER_STAMP);
  const stamp = await workerStamp(layout, build);
  const current = existsSync(stampFile) ? (await readFile(stampFile, "utf8")).trim() : "";
  if (existsSync(python) && current === stamp && !params.force) {
    yield { type: "log", level: "info", message: "worker venv is up to date" };
  } else {
    const basePython = params.basePython ?? process.env.LORASPEC_PYTHON ?? "python3";
    yield { type: "phase", name: "venv", message: `creating ${venv}` };
    const version = await must(exec, basePython, ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"], params.signal, {
      notFound: `no ${basePython} found`,
      hint: "install Python 3.10 or newer, or set LORASPEC_PYTHON to one",
    });
    const [major, minor] = version.stdout.trim().split(".").map(Number);
    if ((major ?? 0) < MIN_PYTHON[0] || ((major ?? 0) === MIN_PYTHON[0] && (minor ?? 0) < MIN_PYTHON[1])) {
      throw new LoraspecError("E_WORKER_NOT_INSTALLED", `${basePython} is Python ${version.stdout.trim()}; the worker needs ${MIN_PYTHON.join(".")}+`, {
        hint: "set LORASPEC_PYTHON to a newer Python",
      });
    }
    if (!existsSync(python)) {
      await mkdir(dirname(venv), { recursive: true });
      await must(exec, basePython, ["-m", "venv", venv], params.signal);
    }

    const pip = ["-m", "pip", "install", "--disable-pip-version-check", "-q"];
    const index = TORCH_BUILDS[build].indexUrl;
    yield { type: "phase", name: "torch", message: `installing torch ${torchPin ?? ""} (${build} build)` };
    await must(exec, python, [...pip, `torch${torchPin ? `==${torchPin}` : ""}`, ...(index ? ["--index-url", index] : [])], params.signal);
    yield { type: "phase", name: "requirements", message: "installing the pinned requirements" };
    await must(exec, python, [...pip, "-r", requirements], params.signal);
    // Package data only (CLIP's BPE merges for the trigger-token lint), installed without deps.
    if (existsSync(dataRequirements)) await must(exec, python, [...pip, "--no-deps", "-r", dataRequirements], params.signal);
    await must(exec, python, [...pip, "--no-deps", "--force-reinstall", ...workerInstall], params.signal);
    if (build === "cuda" && platform === "linux") {
      yield { type: "phase", name: "gpu-extras", message: GPU_EXTRAS.map((x) => `${x.name} (${x.why})`).join(", ") };
      await must(exec, python, [...pip, ...GPU_EXTRAS.map((x) => `${x.name}==${x.version}`)], params.signal);
    }
    await writeFile(stampFile, `${stamp}\n`);
  }

  yield { type: "phase", name: "check", message: "asking the worker what it sees" };
  const check = await must(exec, python, ["-m", "loraspec_worker", "version"], params.signal);
  const done = check.stdout
    .split("\n")
    .map((line) => {
      try {
        return JSON.parse(line) as { type?: string; result?: Record<string, unknown> };
      } catch {
        return undefined;
      }
    })
    .find((event) => event?.type === "done");
  const found = done?.result ?? {};
  const cuda = found.cuda as { available?: boolean } | null | undefined;
  if (gpu && build === "cuda" && cuda && cuda.available === false) {
    yield {
      type: "warning",
      code: "W_CUDA_UNAVAILABLE",
      message: `nvidia-smi sees ${gpu.name} but torch does not; the driver may be older than torch's CUDA build`,
    };
  }
  yield { type: "done", result: { python, venv, layout: layout.kind, gpu, torchBuild: build, worker: found } };
}

/** The file in the venv that records what was installed (requirements, worker, torch build). */
export const WORKER_STAMP = ".loraspec-requirements";

/**
 * The hash of what a venv should hold: the requirements, the data requirements, the worker
 * (pyproject.toml of a checkout, whose sources are editable; the wheel of a package) and the torch
 * build. `loraspec doctor` compares it with the venv's stamp.
 */
export async function workerStamp(layout: WorkerLayout, build: "cuda" | "cpu" | undefined): Promise<string> {
  const source = layout.workerSource;
  const worker = "editable" in source ? join(source.editable, "pyproject.toml") : source.wheel;
  const hash = createHash("sha256")
    .update(await readFile(layout.requirements))
    .update(await readFile(layout.dataRequirements).catch(() => ""))
    .update(worker ? await readFile(worker) : "");
  // undefined: the stamp of `npm run setup:worker` (scripts/setup-worker.mjs), which installs
  // requirements.txt as pinned and picks no torch build.
  if (build) hash.update(build);
  return hash.digest("hex");
}

function workerInstallArgs(layout: WorkerLayout): string[] {
  const source = layout.workerSource;
  if ("editable" in source) return ["-e", source.editable];
  if (!source.wheel) {
    throw new LoraspecError("E_FILE_NOT_FOUND", `no worker wheel (loraspec_worker-*.whl) in ${join(layout.root, "worker")}`, {
      hint: "reinstall loraspec (the npm package ships the wheel), or run from a checkout",
    });
  }
  return [source.wheel];
}

export async function detectGpu(exec: ExecFn, signal?: AbortSignal): Promise<GpuInfo | null> {
  try {
    const out = await exec("nvidia-smi", ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"], { signal });
    if (out.code !== 0) return null;
    const first = out.stdout.split("\n").find((line) => line.trim());
    if (!first) return null;
    const [name, memory, driver] = first.split(",").map((s) => s.trim());
    return { name: name ?? "NVIDIA GPU", memoryMiB: Number(memory) || 0, driver: driver ?? "" };
  } catch {
    return null;
  }
}

async function pinnedVersion(requirements: string, name: string): Promise<string | undefined> {
  const text = await readFile(requirements, "utf8");
  const match = text.match(new RegExp(`^${name}==([^\\s#]+)`, "m"));
  return match?.[1];
}

async function must(
  exec: ExecFn,
  command: string,
  args: string[],
  signal?: AbortSignal,
  messages: { notFound?: string; hint?: string } = {},
): Promise<ExecResult> {
  let result: ExecResult;
  try {
    result = await exec(command, args, { signal });
  } catch (error) {
    throw new LoraspecError("E_WORKER_NOT_INSTALLED", messages.notFound ?? `could not run ${command}: ${(error as Error).message}`, {
      hint: messages.hint,
      cause: error,
    });
  }
  if (result.code !== 0) {
    const tail = result.stderr.trim().split("\n").slice(-8).join("\n");
    throw new LoraspecError("E_WORKER_NOT_INSTALLED", `\`${command} ${args.join(" ")}\` failed (exit ${result.code}):\n${tail}`, {
      hint: messages.hint ?? "check the network and disk space, then run `loraspec setup worker` again",
    });
  }
  return result;
}

export const defaultExec: ExecFn = (command, args, options) =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], signal: options?.signal });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
