import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TRAINER_PINS } from "@loraspec/core/trainers/pins.js";
import { findTrainerInstall, type SetupTrainerId } from "../setup/trainer-install.js";
import { defaultExec, detectGpu, MIN_PYTHON, workerStamp, WORKER_STAMP, type ExecFn, type GpuInfo } from "../worker/setup-worker.js";
import { workerLayout, type WorkerLayout } from "../worker/worker-paths.js";
import { DOCTOR_FACTS, huggingFaceCacheDir, huggingFaceHome, versionAtLeast } from "./doctor-facts.js";

/** ok: usable; missing: not there (the fix says how); warn: there but wrong; info: optional and absent. */
export type DoctorStatus = "ok" | "missing" | "warn" | "info";

export interface DoctorItem {
  id: "node" | "python" | "worker" | "torch" | "gpu" | "kohya" | "ai-toolkit" | "fal" | "hf-cache" | "hf-token" | "chromium";
  label: string;
  status: DoctorStatus;
  summary: string;
  /** The command or step that makes it usable, when it is not. */
  fix?: string;
  details?: Record<string, unknown>;
}

export interface DoctorReport {
  items: DoctorItem[];
  /** False only when loraspec itself cannot run (Node too old). */
  ok: boolean;
}

export interface DoctorParams {
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
  /** The checkout or package folder (default: found from this module). */
  root?: string;
  nodeVersion?: string;
  exec?: ExecFn;
  exists?: (path: string) => boolean;
  signal?: AbortSignal;
}

interface WorkerVersion {
  worker?: string;
  python?: string;
  packages?: Record<string, string | null>;
  cuda?: { available?: boolean; build?: string | null; device_info?: { name: string; capability: string; memory_gib: number }[]; error?: string } | null;
}

/** `loraspec doctor`: what is installed and usable, each line with its fix. Never prints a secret. */
export async function runDoctor(params: DoctorParams = {}): Promise<DoctorReport> {
  const env = params.env ?? process.env;
  const platform = params.platform ?? process.platform;
  const exec = params.exec ?? defaultExec;
  const exists = params.exists ?? existsSync;
  const layout = workerLayout({ root: params.root, env, platform });
  const setupFix = layout.kind === "checkout" ? "npm run setup:worker (in the checkout) or loraspec setup worker" : "loraspec setup worker";

  const items: DoctorItem[] = [nodeItem(params.nodeVersion ?? process.versions.node)];
  items.push(await pythonItem(env, exec, exists(layout.python), params.signal));
  const gpu = await detectGpu(exec, params.signal);
  const worker = await workerItems(layout, exec, exists, setupFix, gpu, params.signal);
  items.push(...worker);
  items.push(trainerItem("kohya", env), trainerItem("ai-toolkit", env));
  items.push(falItem(env), ...huggingFaceItems(env, exists), chromiumItem(env, platform, exists));
  return { items, ok: items.find((item) => item.id === "node")?.status === "ok" };
}

function nodeItem(version: string): DoctorItem {
  const { min, source } = DOCTOR_FACTS.node;
  return versionAtLeast(version, min)
    ? { id: "node", label: "Node", status: "ok", summary: `${version} (needs ${min}+)` }
    : { id: "node", label: "Node", status: "missing", summary: `${version} is older than ${min} (${source})`, fix: `install Node ${min} or newer (https://nodejs.org)` };
}

/** The Python that `loraspec setup worker` builds the venv with: version and a working venv module. */
async function pythonItem(env: NodeJS.ProcessEnv, exec: ExecFn, haveVenv: boolean, signal?: AbortSignal): Promise<DoctorItem> {
  const python = env.LORASPEC_PYTHON || "python3";
  const min = MIN_PYTHON.join(".");
  const label = "Python (for setup)";
  // ensurepip is what Debian's python3 lacks without python3-venv: `python3 -m venv` then fails.
  const probe = "import sys, venv, ensurepip; print('%d.%d.%d' % sys.version_info[:3])";
  const answer = await exec(python, ["-c", probe], { signal }).catch((error: Error) => ({ code: -1, stdout: "", stderr: error.message }));
  const missing: DoctorStatus = haveVenv ? "info" : "missing";
  if (answer.code !== 0) {
    const noVenv = /No module named '?(venv|ensurepip)/.test(answer.stderr);
    return noVenv
      ? { id: "python", label, status: missing, summary: `${python} has no venv/ensurepip module`, fix: "apt-get install python3-venv (Debian/Ubuntu), or set LORASPEC_PYTHON to another Python" }
      : { id: "python", label, status: missing, summary: `no ${python} found`, fix: `install Python ${min}+ with venv, or set LORASPEC_PYTHON to one` };
  }
  const version = answer.stdout.trim();
  return versionAtLeast(version, min)
    ? { id: "python", label, status: "ok", summary: `${python} is ${version} (needs ${min}+)` }
    : { id: "python", label, status: missing, summary: `${python} is ${version}; the worker needs ${min}+`, fix: `install Python ${min}+, or set LORASPEC_PYTHON to one` };
}

async function workerItems(layout: WorkerLayout, exec: ExecFn, exists: (p: string) => boolean, fix: string, gpu: GpuInfo | null, signal?: AbortSignal): Promise<DoctorItem[]> {
  const where = { layout: layout.kind, venv: layout.venv, python: layout.python };
  const gpuItem = gpuLine(gpu);
  if (!exists(layout.python)) {
    return [
      { id: "worker", label: "Python worker", status: "missing", summary: `no venv at ${layout.venv} (training, sampling and scoring need it)`, fix, details: where },
      gpuItem,
      { id: "torch", label: "torch", status: "missing", summary: "needs the worker venv", fix },
    ];
  }
  const signals = [AbortSignal.timeout(DOCTOR_FACTS.workerVersionTimeoutMs), ...(signal ? [signal] : [])];
  const answer = await exec(layout.python, ["-m", "loraspec_worker", "version"], { signal: AbortSignal.any(signals) }).catch((error: Error) => ({ code: -1, stdout: "", stderr: error.message }));
  const found = parseDone(answer.stdout);
  if (answer.code !== 0 || !found) {
    const tail = answer.stderr.trim().split("\n").slice(-2).join(" ");
    return [
      { id: "worker", label: "Python worker", status: "warn", summary: `the venv at ${layout.venv} does not answer: ${tail || `exit ${answer.code}`}`, fix: `${fix} (it reinstalls a broken venv)`, details: where },
      gpuItem,
      { id: "torch", label: "torch", status: "missing", summary: "unknown: the worker did not answer", fix },
    ];
  }
  const stale = await stampStale(layout);
  const drift = pinDrift(layout.requirements, found.packages ?? {});
  const versions = Object.entries(found.packages ?? {}).map(([name, v]) => `${name} ${v ?? "missing"}`).join(", ");
  const workerItem: DoctorItem = {
    id: "worker",
    label: "Python worker",
    status: stale || drift.length ? "warn" : "ok",
    summary: `${found.worker ?? "?"} on Python ${found.python ?? "?"} in ${layout.venv}${stale ? " (older than this loraspec's requirements)" : ""}${drift.length ? `; not the pinned ${drift.join(", ")}` : ""}; ${versions}`,
    ...(stale || drift.length ? { fix } : {}),
    details: { ...where, versions: found.packages },
  };
  return [workerItem, gpuItem, torchItem(found, gpu, fix)];
}

function torchItem(found: WorkerVersion, gpu: GpuInfo | null, fix: string): DoctorItem {
  const version = found.packages?.torch;
  if (!version) return { id: "torch", label: "torch", status: "missing", summary: "not installed in the worker venv", fix };
  const cuda = found.cuda ?? undefined;
  const build = cuda?.build ? `CUDA ${cuda.build} build` : "CPU build";
  const devices = (cuda?.device_info ?? []).map((d) => `${d.name} (compute ${d.capability}, ${d.memory_gib} GiB)`);
  const details = { version, cudaBuild: cuda?.build ?? null, devices: cuda?.device_info ?? [] };
  if (gpu && !cuda?.available) {
    const why = cuda?.build ? "the driver may be older than torch's CUDA build" : "torch is the CPU build";
    return { id: "torch", label: "torch", status: "warn", summary: `${version}, ${build}: nvidia-smi sees ${gpu.name} but torch does not (${why})`, fix: `${fix} (picks the CUDA build when a GPU is found), or update the NVIDIA driver`, details };
  }
  return { id: "torch", label: "torch", status: "ok", summary: `${version}, ${build}${devices.length ? `; ${devices.join(", ")}` : "; no CUDA device (training runs on the CPU: toy models only)"}`, details };
}

function gpuLine(gpu: GpuInfo | null): DoctorItem {
  return gpu
    ? { id: "gpu", label: "NVIDIA GPU", status: "ok", summary: `${gpu.name}, ${Math.round(gpu.memoryMiB / 1024)} GiB, driver ${gpu.driver} (nvidia-smi)`, details: { ...gpu } }
    : { id: "gpu", label: "NVIDIA GPU", status: "info", summary: "none found by nvidia-smi (local training of real models needs one; fal.ai trains remotely)" };
}

function trainerItem(trainer: SetupTrainerId, env: NodeJS.ProcessEnv): DoctorItem {
  const pin = TRAINER_PINS[trainer];
  const fix = `loraspec setup ${trainer}`;
  let install;
  try {
    install = findTrainerInstall({ trainer, env });
  } catch (error) {
    return { id: trainer, label: pin.label, status: "warn", summary: `unreadable setup manifest: ${(error as Error).message}`, fix };
  }
  if (!install) return { id: trainer, label: pin.label, status: "info", summary: `not installed (only for trainer: ${trainer}); pin ${pin.version} (${pin.commit.slice(0, 7)})`, fix };
  const details = { ...install, pin: { version: pin.version, commit: pin.commit } };
  if (install.commit !== pin.commit) {
    return { id: trainer, label: pin.label, status: "warn", summary: `${install.version} (${install.commit.slice(0, 7)}) at ${install.trainerDir}, but this loraspec pins ${pin.version} (${pin.commit.slice(0, 7)})`, fix, details };
  }
  if (!existsSync(join(install.venvDir, "bin", "python"))) {
    return { id: trainer, label: pin.label, status: "warn", summary: `${install.version} at ${install.trainerDir}, but its venv ${install.venvDir} is gone`, fix, details };
  }
  return { id: trainer, label: pin.label, status: "ok", summary: `${install.version} (${install.commit.slice(0, 7)}, the pin) at ${install.trainerDir}`, details };
}

function falItem(env: NodeJS.ProcessEnv): DoctorItem {
  const { keyEnv, keysPage } = DOCTOR_FACTS.fal;
  return env[keyEnv]
    ? { id: "fal", label: "fal.ai key", status: "ok", summary: `${keyEnv} is set (not shown)` }
    : { id: "fal", label: "fal.ai key", status: "info", summary: `${keyEnv} is not set (only for trainer: fal and live fal prices)`, fix: `export ${keyEnv}=... (a key from ${keysPage})` };
}

function huggingFaceItems(env: NodeJS.ProcessEnv, exists: (p: string) => boolean): DoctorItem[] {
  const cache = huggingFaceCacheDir(env);
  const models = exists(cache) ? safeList(cache).filter((name) => name.startsWith("models--")).length : 0;
  const cacheItem: DoctorItem = exists(cache)
    ? { id: "hf-cache", label: "Hugging Face cache", status: "ok", summary: `${cache} (${models} model${models === 1 ? "" : "s"})`, details: { path: cache, models } }
    : { id: "hf-cache", label: "Hugging Face cache", status: "info", summary: `${cache} does not exist yet (base models download there on first use)`, details: { path: cache, models: 0 } };
  const hf = DOCTOR_FACTS.huggingface;
  const fromEnv = hf.tokenEnv.find((name) => env[name]);
  const tokenFile = env[hf.tokenFileEnv] || join(huggingFaceHome(env), "token");
  const tokenItem: DoctorItem = fromEnv
    ? { id: "hf-token", label: "Hugging Face token", status: "ok", summary: `set in ${fromEnv} (not shown)` }
    : exists(tokenFile)
      ? { id: "hf-token", label: "Hugging Face token", status: "ok", summary: `in ${tokenFile} (not shown)` }
      : { id: "hf-token", label: "Hugging Face token", status: "warn", summary: "none (gated base models such as FLUX.1 [dev] need one)", fix: "hf auth login, or export HF_TOKEN=... (https://huggingface.co/settings/tokens)" };
  return [cacheItem, tokenItem];
}

function chromiumItem(env: NodeJS.ProcessEnv, platform: NodeJS.Platform, exists: (p: string) => boolean): DoctorItem {
  const { env: name, path } = DOCTOR_FACTS.chromium;
  const chromium = env[name] || path;
  if (exists(chromium)) return { id: "chromium", label: "chromium", status: "ok", summary: `${chromium} (the web page's browser tests)` };
  const fix = platform === "linux" ? `apt-get install chromium (Debian/Ubuntu), or set ${name}` : `set ${name} to a Chromium binary`;
  return { id: "chromium", label: "chromium", status: "info", summary: `not at ${chromium} (only for the web page's browser tests; \`loraspec ui\` works without it)`, fix };
}

async function stampStale(layout: WorkerLayout): Promise<boolean> {
  const stampFile = join(layout.venv, WORKER_STAMP);
  if (!existsSync(stampFile) || !existsSync(layout.requirements)) return false; // a venv made by hand: nothing to compare
  const have = readFileSync(stampFile, "utf8").trim();
  for (const build of ["cuda", "cpu", undefined] as const) if ((await workerStamp(layout, build).catch(() => "")) === have) return false;
  return true;
}

/** Packages whose installed version is not requirements.txt's pin ("diffusers 0.42.1"); a +local tag (2.13.0+cpu) matches. */
function pinDrift(requirements: string, installed: Record<string, string | null>): string[] {
  if (!existsSync(requirements)) return [];
  const out: string[] = [];
  for (const match of readFileSync(requirements, "utf8").matchAll(/^([A-Za-z0-9_.-]+)==([^\s#]+)/gm)) {
    const [, name, pin] = match;
    const have = installed[name!.toLowerCase()];
    if (have !== undefined && have?.split("+")[0] !== pin) out.push(`${name} ${pin}`);
  }
  return out;
}

function parseDone(stdout: string): WorkerVersion | undefined {
  for (const line of stdout.split("\n")) {
    try {
      const event = JSON.parse(line) as { type?: string; result?: WorkerVersion };
      if (event.type === "done") return event.result ?? {};
    } catch {
      // a log line
    }
  }
  return undefined;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
