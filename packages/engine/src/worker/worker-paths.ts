import { existsSync, readdirSync } from "node:fs";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultCacheDir } from "../setup/trainer-install.js";

/**
 * Where the Python worker comes from and where its venv lives.
 * - `checkout`: a loraspec clone (worker/pyproject.toml beside the code): the worker is installed
 *   editable into <root>/worker/.venv (`npm run setup:worker`), which the tests use.
 * - `package`: an npm install (the package ships worker/requirements*.txt and the worker wheel,
 *   no pyproject.toml): the venv lives in the user's cache, <cache>/worker/venv, shared by every
 *   project and every loraspec install of this user.
 */
export interface WorkerLayout {
  kind: "checkout" | "package";
  /** The checkout or the installed package's folder (the one holding worker/). */
  root: string;
  venv: string;
  python: string;
  requirements: string;
  /** Package data installed with --no-deps (CLIP's BPE merges). */
  dataRequirements: string;
  /** What pip installs as the worker: the checkout's worker/ (editable) or the shipped wheel. */
  workerSource: { editable: string } | { wheel: string | undefined };
}

export interface WorkerLayoutParams {
  /** The checkout or package folder (default: found from this module, or $LORASPEC_HOME). */
  root?: string;
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
}

/** The file name pattern of the worker wheel that `npm pack` ships in worker/. */
export const WORKER_WHEEL = /^loraspec_worker-[^-]+-py3-none-any\.whl$/;

/** Works out the layout: a checkout when <root>/worker/pyproject.toml exists, else an npm package. */
export function workerLayout(params: WorkerLayoutParams = {}): WorkerLayout {
  const env = params.env ?? process.env;
  const platform = params.platform ?? process.platform;
  const root = params.root ?? findWorkerRoot(undefined, env);
  const workerDir = join(root, "worker");
  const requirements = join(workerDir, "requirements.txt");
  const dataRequirements = join(workerDir, "requirements-data.txt");
  if (isCheckout(root)) {
    const venv = join(workerDir, ".venv");
    return { kind: "checkout", root, venv, python: venvPython(venv, platform, env), requirements, dataRequirements, workerSource: { editable: workerDir } };
  }
  const venv = join(defaultCacheDir(env, platform), "worker", "venv");
  const wheel = existsSync(workerDir) ? readdirSync(workerDir).find((name) => WORKER_WHEEL.test(name)) : undefined;
  return {
    kind: "package",
    root,
    venv,
    python: venvPython(venv, platform, env),
    requirements,
    dataRequirements,
    workerSource: { wheel: wheel ? join(workerDir, wheel) : undefined },
  };
}

/**
 * The folder that holds `worker/`: $LORASPEC_HOME when set, else the first parent of this module
 * (source tree, the checkout's dist/ or the package's lib/) with worker/pyproject.toml (a
 * checkout) or worker/requirements.txt (an npm package); else the current directory.
 */
export function findWorkerRoot(from: string = fileURLToPath(import.meta.url), env: NodeJS.ProcessEnv = process.env): string {
  const override = env.LORASPEC_HOME;
  if (override) return resolve(override);
  let dir = dirname(from);
  for (;;) {
    if (existsSync(join(dir, "worker", "pyproject.toml")) || existsSync(join(dir, "worker", "requirements.txt"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

/**
 * The worker venv's python: $LORASPEC_WORKER_PYTHON, else <root>/worker/.venv's in a checkout,
 * else the user-cache venv's (see workerLayout).
 */
export function workerPython(root: string = findWorkerRoot()): string {
  return workerLayout({ root }).python;
}

function isCheckout(root: string): boolean {
  return existsSync(join(root, "worker", "pyproject.toml"));
}

function venvPython(venv: string, platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string {
  const override = env.LORASPEC_WORKER_PYTHON;
  if (override) return onPath(override, env, platform);
  return platform === "win32" ? join(venv, "Scripts", "python.exe") : join(venv, "bin", "python");
}

/**
 * $LORASPEC_WORKER_PYTHON as a shell reads a command: a bare name (`python3`) is looked up on $PATH (the first file of
 * that name, with Windows' PATHEXT endings there); a path is taken as given, relative to the working folder. A name found
 * nowhere is returned as written, so "not installed (no python3)" names what the user set.
 */
export function onPath(command: string, env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string {
  if (isAbsolute(command) || /[\\/]/.test(command)) return resolve(command);
  const endings = platform === "win32" ? ["", ...(env.PATHEXT ?? ".EXE;.CMD;.BAT").split(";").map((e) => e.toLowerCase())] : [""];
  for (const dir of (env.PATH ?? env.Path ?? "").split(platform === "win32" ? ";" : delimiter)) {
    if (!dir) continue;
    for (const ending of endings) {
      const candidate = join(dir, command + ending);
      if (existsSync(candidate)) return candidate;
    }
  }
  return command;
}
