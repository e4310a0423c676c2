import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

/**
 * The project folder for `runs`, `logs`, `stop`: the given one, else the nearest folder from cwd
 * upwards that holds `.loraspec/` (or `lora.yaml`), else cwd.
 */
export function findProjectDir(params: { project?: string; cwd?: string } = {}): string {
  const cwd = resolve(params.cwd ?? process.cwd());
  if (params.project) return resolve(cwd, params.project);
  for (let dir = cwd; ; dir = dirname(dir)) {
    if (existsSync(join(dir, ".loraspec", "loraspec.db")) || existsSync(join(dir, "lora.yaml"))) return dir;
    if (dirname(dir) === dir) return cwd;
  }
}
