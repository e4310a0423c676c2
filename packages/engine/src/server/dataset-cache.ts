import { createHash } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/**
 * The dataset scan is costly (every image decoded): it is kept per key and redone only when a
 * file of the dataset folder changed. A change is seen by the folder's signature (every file's
 * path, size and mtime), which costs a readdir and a stat per file, not a decode.
 */
export class DatasetCache {
  private readonly entries = new Map<string, { signature: string; value: Promise<unknown> }>();
  /** Entries kept at most (a few keys per contract: quick summary, full scan, rows). */
  private static readonly MAX_ENTRIES = 32;

  /** The value for `key` while the folder's signature is unchanged; else computes it anew. */
  async memo<T>(params: { key: string; dir: string; compute: () => Promise<T> }): Promise<T> {
    const signature = await folderSignature(params.dir);
    const hit = this.entries.get(params.key);
    if (hit && hit.signature === signature) return hit.value as Promise<T>;
    const value = params.compute();
    this.entries.set(params.key, { signature, value });
    if (this.entries.size > DatasetCache.MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    // A failed scan is not remembered: the next request tries again.
    value.catch(() => {
      if (this.entries.get(params.key)?.value === value) this.entries.delete(params.key);
    });
    return value;
  }
}

/** Every file under `dir` as path, size and mtime, hidden ones by name only, hashed; "" if no folder. */
export async function folderSignature(dir: string): Promise<string> {
  const hash = createHash("sha256");
  async function walk(current: string, rel: string): Promise<void> {
    let entries;
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch {
      hash.update(`missing:${rel}\n`);
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const full = join(current, entry.name);
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      // A hidden entry counts by its name only (the listing names it, never reads it; .git/ is not walked).
      if (entry.name.startsWith(".")) {
        hash.update(`hidden:${path}${entry.isDirectory() ? "/" : ""}\n`);
        continue;
      }
      if (entry.isDirectory()) await walk(full, path);
      else if (entry.isFile()) {
        const s = await stat(full).catch(() => undefined);
        hash.update(`${path}\0${s?.size ?? -1}\0${s?.mtimeMs ?? -1}\n`);
      }
    }
  }
  await walk(dir, "");
  return hash.digest("base64url");
}
