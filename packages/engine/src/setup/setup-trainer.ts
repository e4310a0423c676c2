import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { TRAINER_PINS, type TrainerPin } from "@loraspec/core/trainers/pins.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { SETUP_MANIFEST, TOKENIZER_CACHE, trainerRoot, type SetupTrainerId, type TrainerInstall } from "./trainer-install.js";

export interface RunResult {
  code: number;
  /** The last lines of stdout+stderr (for error messages). */
  tail: string;
}
/** Runs a command to completion; `onLine` gets each output line. Injectable for tests. */
export type RunFn = (
  command: string,
  args: string[],
  options: { cwd?: string; signal?: AbortSignal; onLine?: (line: string) => void; timeoutMs?: number },
) => Promise<RunResult>;

export interface SetupTrainerParams {
  trainer: SetupTrainerId;
  /** Use this existing checkout instead of cloning the pinned version (it is not modified). */
  source?: string;
  /** loraspec's cache folder (default: see defaultCacheDir). */
  cacheDir?: string;
  signal?: AbortSignal;
  /** The Python that creates the venv (default $LORASPEC_PYTHON or python3). */
  python?: string;
  /**
   * Wheel index for the torch build installed before the requirements (default: the CUDA index
   * the trainer's README uses; e.g. https://download.pytorch.org/whl/cpu). "skip" installs none.
   */
  torchIndexUrl?: string;
  /** Override the pinned repo/ref/commit (tests; forks). */
  pin?: TrainerPin;
  run?: RunFn;
  env?: NodeJS.ProcessEnv;
}

// Importing torch and the model code can take a while on a cold disk; a --help that hangs is broken.
const HELP_TIMEOUT_MS = 180_000;

/**
 * `loraspec setup kohya|ai-toolkit`: clones the pinned commit into loraspec's cache (or uses
 * `source`), creates a venv, installs the trainer's requirements into it and checks that every
 * entry script answers `--help`. Safe to run again: a matching checkout and venv are reused.
 * Yields phase/log events; `done` carries the TrainerInstall (also written to the root's manifest).
 */
export async function* setupTrainer(params: SetupTrainerParams): AsyncGenerator<LoraspecEvent> {
  const run = params.run ?? defaultRun;
  const env = params.env ?? process.env;
  const pin = params.pin ?? TRAINER_PINS[params.trainer];
  const python = params.python ?? env.LORASPEC_PYTHON ?? "python3";
  const root = trainerRoot({ trainer: params.trainer, cacheDir: params.cacheDir, env });
  const venvDir = join(root, ".venv");
  const steps = stepRunner(run, params);

  const trainerDir = params.source ? yield* useSource(params.source) : yield* checkoutPin(steps, run, pin, root);
  const venvPython = yield* installTrainer({ steps, params, pin, python, venvDir, trainerDir });
  yield* verifyEntryScripts(steps, pin, venvPython, trainerDir);
  const tokenizerCacheDir = params.trainer === "kohya" ? yield* cacheKohyaTokenizers(steps, root, venvPython, trainerDir) : undefined;

  const install: TrainerInstall = {
    trainer: params.trainer,
    version: pin.version,
    commit: params.source ? ((await gitHead(run, trainerDir)) ?? "unknown") : pin.commit,
    trainerDir,
    venvDir,
    ...(params.source ? { source: trainerDir } : {}),
    python,
    installedAt: new Date().toISOString(),
    ...(tokenizerCacheDir ? { tokenizerCacheDir } : {}),
  };
  if (params.source && install.commit !== pin.commit) {
    yield {
      type: "warning",
      code: "TRAINER_NOT_PINNED",
      message: `${trainerDir} is at ${install.commit.slice(0, 12)}, not the pinned ${pin.version} (${pin.commit.slice(0, 7)}): compiled configs target the pinned version.`,
    };
  }
  await atomicWrite(join(root, SETUP_MANIFEST), `${JSON.stringify(install, null, 2)}\n`);
  yield { type: "done", result: { ...install } };
}

const log = (line: string): LoraspecEvent => ({ type: "log", level: "debug", message: line });

type Steps = ReturnType<typeof stepRunner>;

/**
 * Runs the setup's commands. Each yields the lines it printed once it is done (pip prints little
 * that matters live); `step` also fails on a cancel or a non-zero exit, `runLogged` leaves the exit to the caller.
 */
function stepRunner(run: RunFn, params: SetupTrainerParams) {
  const pending: LoraspecEvent[] = [];
  const onLine = (line: string) => {
    if (line.trim()) pending.push(log(line));
  };
  async function* runLogged(command: string, args: string[], cwd: string | undefined, timeoutMs?: number) {
    const result = await run(command, args, { cwd, signal: params.signal, onLine, timeoutMs });
    yield* pending.splice(0);
    return result;
  }
  async function* step(command: string, args: string[], cwd: string | undefined, what: string, timeoutMs?: number) {
    const result = yield* runLogged(command, args, cwd, timeoutMs);
    if (params.signal?.aborted) throw new LoraspecError("E_CANCELLED", `setup ${params.trainer} was cancelled.`);
    if (result.code !== 0) {
      throw new LoraspecError("E_TRAINER_FAILED", `${what} failed (exit ${result.code}).`, {
        hint: `Output:\n${result.tail}`,
        details: { command: [command, ...args], cwd },
      });
    }
    return result;
  }
  return { step, runLogged };
}

/** --source: the user's own checkout, used as it is. */
async function* useSource(source: string): AsyncGenerator<LoraspecEvent, string> {
  const trainerDir = resolve(source);
  if (!existsSync(trainerDir)) {
    throw new LoraspecError("E_FILE_NOT_FOUND", `--source ${source} does not exist.`, { file: source });
  }
  yield { type: "phase", name: "source", message: `using the checkout at ${trainerDir}` };
  return trainerDir;
}

/** Fetches exactly the pinned commit into `root` (kept when already there); a folder that is not a checkout is refused. */
async function* checkoutPin(steps: Steps, run: RunFn, pin: TrainerPin, root: string): AsyncGenerator<LoraspecEvent, string> {
  yield { type: "phase", name: "clone", message: `${pin.label} ${pin.version} (${pin.commit.slice(0, 7)}) into ${root}` };
  const head = existsSync(join(root, ".git")) ? await gitHead(run, root) : undefined;
  if (head === pin.commit) {
    yield log(`${root} is already at ${pin.commit.slice(0, 7)}`);
    return root;
  }
  if (existsSync(root) && head === undefined && (await readdir(root)).some((n) => n !== ".venv" && n !== SETUP_MANIFEST)) {
    throw new LoraspecError("E_FILE_EXISTS", `${root} exists and is not a git checkout.`, {
      file: root,
      hint: "Move it away, or point LORASPEC_CACHE_DIR elsewhere, or pass --source with your own checkout.",
    });
  }
  await mkdir(root, { recursive: true });
  if (head === undefined) yield* steps.step("git", ["init", "--quiet", root], undefined, "git init");
  // Fetch exactly the pinned commit (works for tags and for repos without tags).
  yield* steps.step("git", ["-C", root, "fetch", "--quiet", "--depth", "1", pin.repo, pin.commit], undefined, `git fetch ${pin.repo} ${pin.commit}`);
  yield* steps.step("git", ["-C", root, "checkout", "--quiet", "--force", "--detach", "FETCH_HEAD"], undefined, "git checkout");
  const now = await gitHead(run, root);
  if (now !== pin.commit) {
    throw new LoraspecError("E_TRAINER_FAILED", `The checkout is at ${now}, not the pinned ${pin.commit}.`, { file: root });
  }
  return root;
}

/** Creates the venv (or reuses it) and pip-installs torch, the requirements and any extra packages; returns the venv's python. */
async function* installTrainer(o: {
  steps: Steps;
  params: SetupTrainerParams;
  pin: TrainerPin;
  python: string;
  venvDir: string;
  trainerDir: string;
}): AsyncGenerator<LoraspecEvent, string> {
  const { steps, pin, python, venvDir, trainerDir } = o;
  yield { type: "phase", name: "venv", message: venvDir };
  const venvPython = join(venvDir, "bin", "python");
  if (existsSync(venvPython)) yield log(`reusing ${venvDir}`);
  else yield* steps.step(python, ["-m", "venv", venvDir], undefined, `${python} -m venv`);

  yield { type: "phase", name: "install", message: `pip install -r ${pin.requirementsFile}` };
  const requirements = join(trainerDir, pin.requirementsFile);
  if (!existsSync(requirements)) {
    throw new LoraspecError("E_FILE_NOT_FOUND", `${requirements} is missing: is this a ${pin.label} checkout?`, { file: requirements });
  }
  if (pin.torch && o.params.torchIndexUrl !== "skip") {
    const indexUrl = o.params.torchIndexUrl ?? pin.torch.indexUrl;
    yield { type: "log", level: "info", message: `installing ${pin.torch.packages.join(" ")} from ${indexUrl} (${pin.torch.source})` };
    yield* steps.step(venvPython, ["-m", "pip", "install", "--disable-pip-version-check", ...pin.torch.packages, "--index-url", indexUrl], trainerDir, "pip install torch");
  }
  // cwd = checkout: sd-scripts' requirements end with `-e .` (the repo itself as a package).
  yield* steps.step(venvPython, ["-m", "pip", "install", "--disable-pip-version-check", "-r", pin.requirementsFile], trainerDir, "pip install");
  if (pin.extraPackages?.length) {
    yield* steps.step(venvPython, ["-m", "pip", "install", "--disable-pip-version-check", ...pin.extraPackages], trainerDir, `pip install ${pin.extraPackages.join(" ")}`);
  }
  return venvPython;
}

/** Every entry script must exist and answer `--help`. */
async function* verifyEntryScripts(steps: Steps, pin: TrainerPin, venvPython: string, trainerDir: string): AsyncGenerator<LoraspecEvent> {
  yield { type: "phase", name: "verify", message: `${pin.entryScripts.join(", ")} --help` };
  for (const script of pin.entryScripts) {
    if (!existsSync(join(trainerDir, script))) {
      throw new LoraspecError("E_FILE_NOT_FOUND", `${script} is missing from ${trainerDir}.`, { file: join(trainerDir, script) });
    }
    yield* steps.step(venvPython, [script, "--help"], trainerDir, `${script} --help`, HELP_TIMEOUT_MS);
    yield { type: "log", level: "info", message: `${script} --help answered` };
  }
}

/**
 * sd-scripts loads its tokenizers from the hub unless --tokenizer_cache_dir holds them (strategy_base.py
 * _load_tokenizer L54-71); fill it now, while the hub is reachable (it is also filled by the first online run).
 * A failure is a warning, not an error.
 */
async function* cacheKohyaTokenizers(steps: Steps, root: string, venvPython: string, trainerDir: string): AsyncGenerator<LoraspecEvent, string> {
  const tokenizerCacheDir = join(root, TOKENIZER_CACHE);
  yield { type: "phase", name: "tokenizers", message: tokenizerCacheDir };
  const result = yield* steps.runLogged(venvPython, ["-c", KOHYA_TOKENIZER_PREFILL, tokenizerCacheDir], trainerDir, HELP_TIMEOUT_MS);
  if (result.code !== 0) {
    yield {
      type: "warning",
      code: "TOKENIZERS_NOT_CACHED",
      message: `could not cache sd-scripts' tokenizers in ${tokenizerCacheDir} (exit ${result.code}); the first run must reach huggingface.co to fetch them. Last lines:\n${result.tail}`,
    };
  } else yield { type: "log", level: "info", message: `tokenizers cached in ${tokenizerCacheDir}` };
  return tokenizerCacheDir;
}

async function gitHead(run: RunFn, dir: string): Promise<string | undefined> {
  let out = "";
  const result = await run("git", ["-C", dir, "rev-parse", "HEAD"], { onLine: (l) => (out += l.trim()) });
  return result.code === 0 && /^[0-9a-f]{40}$/.test(out) ? out : undefined;
}

const TAIL_LINES = 30;

/** Loads SDXL's and FLUX.1's tokenizers through sd-scripts' own strategies, which save them to the cache dir (argv[1]). */
const KOHYA_TOKENIZER_PREFILL = [
  "import sys",
  "from library import strategy_flux, strategy_sdxl",
  "strategy_sdxl.SdxlTokenizeStrategy(None, sys.argv[1])",
  "strategy_flux.FluxTokenizeStrategy(512, sys.argv[1])",
].join("\n");

const defaultRun: RunFn = (command, args, options) =>
  new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      stdio: ["ignore", "pipe", "pipe"],
      signal: options.signal,
      env: { ...process.env, PIP_NO_INPUT: "1", GIT_TERMINAL_PROMPT: "0" },
    });
    const tail: string[] = [];
    let partial = { out: "", err: "" };
    const feed = (key: "out" | "err", chunk: Buffer) => {
      const text = partial[key] + chunk.toString("utf8");
      const lines = text.split(/\r\n|\r|\n/);
      partial = { ...partial, [key]: lines.pop() ?? "" };
      for (const line of lines) {
        options.onLine?.(line);
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
      }
    };
    child.stdout.on("data", (c: Buffer) => feed("out", c));
    child.stderr.on("data", (c: Buffer) => feed("err", c));
    const timer = options.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), options.timeoutMs) : undefined;
    child.on("error", (error: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      if (error.code === "ENOENT") {
        reject(new LoraspecError("E_FILE_NOT_FOUND", `${command} was not found on PATH.`, { hint: `Install ${command}, or set LORASPEC_PYTHON for Python.` }));
      } else if (error.name === "AbortError") {
        resolvePromise({ code: 130, tail: tail.join("\n") });
      } else reject(error);
    });
    child.on("close", (code) => {
      if (timer) clearTimeout(timer);
      for (const key of ["out", "err"] as const) if (partial[key]) options.onLine?.(partial[key]), tail.push(partial[key]);
      resolvePromise({ code: code ?? 1, tail: tail.slice(-TAIL_LINES).join("\n") });
    });
  });
