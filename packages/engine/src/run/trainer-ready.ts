import { existsSync } from "node:fs";
import { join } from "node:path";
import type { TrainerId } from "@loraspec/core/contract/ids.js";
import { LoraspecError } from "@loraspec/core/errors.js";
import { PINNED_TRAINER_VERSIONS } from "@loraspec/core/knowledge/trainers.js";
import { trainerPaths } from "../setup/trainer-install.js";
import { workerPython } from "../worker/worker-paths.js";

/**
 * Before a run is created: is the contract's local trainer installed where the run would start it (kohya's
 * or ai-toolkit's venv from `loraspec setup`, or the built-in worker's)? Without it `train` used to record a
 * run that failed at once (E_WORKER_NOT_INSTALLED after the dataset copy); now it refuses with the setup
 * command and no run. fal needs nothing local. `python` is injectable for tests.
 */
export function assertTrainerInstalled(trainer: TrainerId, opts: { env?: NodeJS.ProcessEnv; workerPython?: string } = {}): void {
  if (trainer === "fal") return;
  if (trainer === "diffusers") {
    const python = opts.workerPython ?? workerPython();
    if (existsSync(python)) return;
    throw new LoraspecError("E_WORKER_NOT_INSTALLED", `the built-in trainer's Python worker is not installed (no ${python})`, {
      field: "trainer.name",
      hint: "Run `loraspec setup worker`, then `loraspec train` again.",
    });
  }
  const { venvDir, trainerDir } = trainerPaths({ trainer, env: opts.env ?? process.env });
  const python = join(venvDir, process.platform === "win32" ? "Scripts/python.exe" : "bin/python");
  if (existsSync(python)) return;
  throw new LoraspecError("E_WORKER_NOT_INSTALLED", `${trainer} is not installed here (no ${python}; looked in ${trainerDir})`, {
    field: "trainer.name",
    hint: `Run \`loraspec setup ${trainer}\` (installs ${trainer} ${PINNED_TRAINER_VERSIONS[trainer].version}, the version loraspec compiles for), or set LORASPEC_${trainer === "kohya" ? "KOHYA" : "AI_TOOLKIT"}_DIR to an install; then \`loraspec train\` again.`,
  });
}
