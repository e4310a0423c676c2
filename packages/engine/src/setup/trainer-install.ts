import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export type SetupTrainerId = "kohya" | "ai-toolkit";

/** What `loraspec setup <trainer>` leaves in `<root>/loraspec-setup.json`. */
export interface TrainerInstall {
  trainer: SetupTrainerId;
  version: string;
  commit: string;
  /** The checkout the scripts run from (the clone, or the --source folder). */
  trainerDir: string;
  venvDir: string;
  /** Set when the checkout is the user's own (--source). */
  source?: string;
  python: string;
  installedAt: string;
  /**
   * kohya: sd-scripts' `--tokenizer_cache_dir` (tokenizers saved as `<hub id with / -> _>/`), filled
   * at setup when the hub is reachable and by sd-scripts itself on its first online run; with it an
   * offline run does not reach for huggingface.co (a ConnectionError otherwise).
   */
  tokenizerCacheDir?: string;
}

/** Where the kohya tokenizer cache lives under a trainer root. */
export const TOKENIZER_CACHE = "tokenizers";

export const SETUP_MANIFEST = "loraspec-setup.json";

/**
 * loraspec's cache: $LORASPEC_CACHE_DIR, else the platform's cache folder: $XDG_CACHE_HOME/loraspec
 * or ~/.cache/loraspec (Linux and other Unix, XDG base directory spec), ~/Library/Caches/loraspec
 * (macOS), %LOCALAPPDATA%\loraspec\Cache (Windows).
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (env.LORASPEC_CACHE_DIR) return resolve(env.LORASPEC_CACHE_DIR);
  const home = env.HOME || homedir();
  if (platform === "darwin") return join(home, "Library", "Caches", "loraspec");
  if (platform === "win32") return join(env.LOCALAPPDATA ?? join(home, "AppData", "Local"), "loraspec", "Cache");
  return join(env.XDG_CACHE_HOME || join(home, ".cache"), "loraspec");
}

/** Where a trainer is installed: $LORASPEC_KOHYA_DIR / $LORASPEC_AI_TOOLKIT_DIR, else <cacheDir>/<trainer>. */
export function trainerRoot(params: { trainer: SetupTrainerId; cacheDir?: string; env?: NodeJS.ProcessEnv }): string {
  const env = params.env ?? process.env;
  const override = env[`LORASPEC_${params.trainer.toUpperCase().replace("-", "_")}_DIR`];
  if (override) return resolve(override);
  return resolve(params.cacheDir ?? defaultCacheDir(env), params.trainer);
}

/**
 * The installed trainer's checkout and venv, read from the setup manifest (so a --source checkout
 * is found too); undefined when `loraspec setup <trainer>` has not run.
 */
export function findTrainerInstall(params: { trainer: SetupTrainerId; cacheDir?: string; env?: NodeJS.ProcessEnv }): TrainerInstall | undefined {
  const manifest = join(trainerRoot(params), SETUP_MANIFEST);
  if (!existsSync(manifest)) return undefined;
  return JSON.parse(readFileSync(manifest, "utf8")) as TrainerInstall;
}

/**
 * The checkout, venv and (kohya) tokenizer cache a run uses: the setup manifest's, else the install
 * folder `loraspec setup` would use ($LORASPEC_<NAME>_DIR or the cache).
 */
export function trainerPaths(params: { trainer: SetupTrainerId; cacheDir?: string; env?: NodeJS.ProcessEnv }): {
  trainerDir: string;
  venvDir: string;
  tokenizerCacheDir?: string;
} {
  const root = trainerRoot(params);
  const install = findTrainerInstall(params);
  const tokenizers = params.trainer === "kohya" ? { tokenizerCacheDir: install?.tokenizerCacheDir ?? join(root, TOKENIZER_CACHE) } : {};
  if (install) return { trainerDir: install.trainerDir, venvDir: install.venvDir, ...tokenizers };
  return { trainerDir: root, venvDir: join(root, ".venv"), ...tokenizers };
}
