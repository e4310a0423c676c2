import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { dirname, basename, join } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import { fsError } from "./file-operands.js";

/**
 * Writes a file so that readers see the old content or the new, never half of it:
 * write a temp file beside it, fsync, rename over, fsync the folder. A path that cannot be a file
 * (empty, an existing folder, under a file) or that the system refuses is a coded error naming it
 * (fs/file-operands.ts fsError), the temp file removed: never a Node errno with a stack.
 */
export async function atomicWrite(path: string, data: string | Uint8Array | Iterable<Uint8Array>): Promise<void> {
  if (path.trim() === "") throw new LoraspecError("E_USAGE", "the file to write has an empty name", { hint: "Name a file." });
  try {
    await writeThenRename(path, data);
  } catch (error) {
    throw fsError(error, path) ?? error;
  }
}

async function writeThenRename(path: string, data: string | Uint8Array | Iterable<Uint8Array>): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(tmp, "wx");
  try {
    if (typeof data === "string" || data instanceof Uint8Array) {
      await handle.writeFile(data);
    } else {
      for (const chunk of data) await handle.write(chunk);
    }
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic there.
  }
}
