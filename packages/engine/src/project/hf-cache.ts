import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readSmallText } from "../fs/read-small-file.js";

/** The Hugging Face hub cache folder, as huggingface_hub resolves it. */
export function hfHubCache(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  return join(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "huggingface"), "hub");
}

/** The snapshot folder of an HF repo in the local cache (refs/main first), if any. */
export async function cachedSnapshot(repo: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const root = join(hfHubCache(env), `models--${repo.replaceAll("/", "--")}`);
  const ref = await readSmallText({ file: join(root, "refs", "main"), limit: FILE_LIMITS.modelConfig }).catch(() => undefined);
  if (ref && existsSync(join(root, "snapshots", ref.trim()))) return join(root, "snapshots", ref.trim());
  const snaps = await readdir(join(root, "snapshots")).catch(() => [] as string[]);
  return snaps.length > 0 ? join(root, "snapshots", snaps[0]!) : undefined;
}
