import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import type { TrainerId } from "@loraspec/core/contract/ids.js";
import { LoraspecError } from "@loraspec/core/errors.js";
import { PINNED_TRAINER_VERSIONS } from "@loraspec/core/knowledge/trainers.js";
import { trainerPaths } from "../setup/trainer-install.js";
import { GPU_EXTRAS } from "../worker/setup-worker.js";
import { workerPython } from "../worker/worker-paths.js";
import { falCredentialsFromEnv } from "../fal/create-fal-runner.js";
import { requireKey } from "../fal/fal-connection.js";

/**
 * Before a run is created: is the contract's local trainer installed where the run would start it (kohya's
 * or ai-toolkit's venv from `loraspec setup`, or the built-in worker's)? Without it `train` used to record a
 * run that failed at once (E_WORKER_NOT_INSTALLED after the dataset copy); now it refuses with the setup
 * command and no run. fal needs nothing installed, but a key: without FAL_KEY (or FAL_KEY_ID + FAL_KEY_SECRET, or
 * the `falKey` train passes) `train` created a run that wrote dataset.zip and failed E_REMOTE_AUTH; now it is
 * refused here with fal's own message and hint (fal-connection.ts requireKey), and check says it as
 * `trainer-not-ready`. `python` is injectable for tests.
 */
export function assertTrainerInstalled(trainer: TrainerId, opts: { env?: NodeJS.ProcessEnv; workerPython?: string; optimizer?: string; falKey?: string } = {}): void {
  if (trainer === "fal") {
    try {
      requireKey(opts.falKey || falCredentialsFromEnv(opts.env ?? process.env));
    } catch (error) {
      if (error instanceof LoraspecError) throw new LoraspecError(error.code, error.message, { field: "trainer.name", hint: error.hint });
      throw error;
    }
    return;
  }
  if (trainer === "diffusers") {
    const python = opts.workerPython ?? workerPython();
    if (!existsSync(python)) {
      throw new LoraspecError("E_WORKER_NOT_INSTALLED", `the built-in trainer's Python worker is not installed (no ${python})`, {
        field: "trainer.name",
        hint: "Run `loraspec setup worker`, then `loraspec train` again.",
      });
    }
    if (opts.optimizer) assertWorkerHasOptimizer(python, opts.optimizer);
    return;
  }
  const { venvDir, trainerDir } = trainerPaths({ trainer, env: opts.env ?? process.env });
  const python = join(venvDir, process.platform === "win32" ? "Scripts/python.exe" : "bin/python");
  if (existsSync(python)) return;
  throw new LoraspecError("E_WORKER_NOT_INSTALLED", `${trainer} is not installed here (no ${python}; looked in ${trainerDir})`, {
    field: "trainer.name",
    hint: `Run \`loraspec setup ${trainer}\` (installs ${trainer} ${PINNED_TRAINER_VERSIONS[trainer].version}, the version loraspec compiles for), or set LORASPEC_${trainer === "kohya" ? "KOHYA" : "AI_TOOLKIT"}_DIR to an install; then \`loraspec train\` again.`,
  });
}

/**
 * The built-in trainer's optimizers that need a package only the CUDA worker install brings (GPU_EXTRAS: adamw8bit
 * is bitsandbytes'): refused before a run exists where the worker's venv lacks it (the worker refused it only after
 * loading the base, E_NOT_SUPPORTED). Looks for the package folder in the venv's site-packages.
 */
function assertWorkerHasOptimizer(python: string, optimizer: string): void {
  const extra = GPU_EXTRAS.find((x) => (x.optimizers as readonly string[]).includes(optimizer));
  if (!extra || sitePackages(python).some((dir) => existsSync(join(dir, extra.module)))) return;
  throw new LoraspecError("E_WORKER_PACKAGE_MISSING", `optimizer ${optimizer} needs ${extra.name}, which the worker's environment does not have (it comes with the CUDA install of the worker only)`, {
    field: "hyperparameters.optimizer",
    hint: "Use optimizer: adamw (the built-in trainer's fused AdamW; 8-bit states save ~0.1 GB of a LoRA), or train on a CUDA machine, where `loraspec setup worker` installs it with the CUDA build of torch.",
  });
}

/** A venv's site-packages folders from its python (bin/python -> lib/pythonX.Y/site-packages; Scripts/python.exe -> Lib/site-packages). */
function sitePackages(python: string): string[] {
  const venv = dirname(dirname(python));
  const win = join(venv, "Lib", "site-packages");
  if (existsSync(win)) return [win];
  const lib = join(venv, "lib");
  if (!existsSync(lib)) return [];
  return readdirSync(lib)
    .filter((d) => d.startsWith("python"))
    .map((d) => join(lib, d, "site-packages"));
}
