import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The folder that holds `worker/` (the Python package and its venv): $LORASPEC_HOME when set,
 * else the first parent of this module (source tree or the bundled dist/cli.mjs) that has
 * worker/pyproject.toml.
 */
export function findWorkerRoot(from: string = fileURLToPath(import.meta.url)): string {
  const override = process.env.LORASPEC_HOME;
  if (override) return resolve(override);
  let dir = dirname(from);
  for (;;) {
    if (existsSync(join(dir, "worker", "pyproject.toml"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

/** The worker venv's python: $LORASPEC_WORKER_PYTHON, else <root>/worker/.venv/bin/python. */
export function workerPython(root: string = findWorkerRoot()): string {
  const override = process.env.LORASPEC_WORKER_PYTHON;
  if (override) return override;
  return process.platform === "win32"
    ? join(root, "worker", ".venv", "Scripts", "python.exe")
    : join(root, "worker", ".venv", "bin", "python");
}
