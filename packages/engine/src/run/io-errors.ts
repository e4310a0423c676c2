import { readdirSync, statfsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { LoraspecError, isLoraspecError } from "@loraspec/core/errors.js";
import { formatBytes } from "../fs/format-bytes.js";

/** errno codes of a full disk or quota (Linux/macOS). */
export const FULL = new Set(["ENOSPC", "EDQUOT"]);
/** errno codes of a machine-level I/O problem, as opposed to a bad path the user gave. */
export const IO = new Set(["EROFS", "EIO", "EMFILE", "ENFILE"]);

/**
 * Turns a disk-full or I/O error (Node errno, better-sqlite3's SQLITE_FULL / SQLITE_IOERR_*, or
 * Python's "[Errno 28] No space left on device" text) into a coded error that names the path and,
 * for a full disk, the free space there and what the write needed. Anything else: undefined.
 */
export function ioError(error: unknown, context: { path?: string; neededBytes?: number; doing?: string } = {}): LoraspecError | undefined {
  if (isLoraspecError(error)) return error.code === "E_DISK_FULL" || error.code === "E_IO" ? error : undefined;
  const e = error as { code?: unknown; path?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const message = typeof e?.message === "string" ? e.message : String(error);
  const path = context.path ?? (typeof e?.path === "string" ? e.path : undefined);
  const doing = context.doing ? `${context.doing}: ` : "";
  if (FULL.has(code) || code === "SQLITE_FULL" || /No space left on device|\[Errno 28\]|database or disk is full/i.test(message)) {
    const free = path ? freeBytes(path) : undefined;
    const need = context.neededBytes;
    const space = [free !== undefined ? `${formatBytes(free)} free` : undefined, need !== undefined ? `${formatBytes(need)} needed` : undefined].filter(Boolean).join(", ");
    return new LoraspecError("E_DISK_FULL", `${doing}the disk is full${path ? ` at ${path}` : ""}${space ? ` (${space})` : ""}`, {
      file: path,
      hint: `free${need !== undefined ? ` at least ${formatBytes(need)}` : " space"} on that disk (old runs' checkpoints under .loraspec/runs are the usual bulk), then \`loraspec train --resume <id>\``,
      details: { errno: code || undefined, freeBytes: free, neededBytes: need },
      retryable: true,
      cause: error,
    });
  }
  if (IO.has(code) || code.startsWith("SQLITE_IOERR") || code === "SQLITE_READONLY") {
    // Node's message already names the path ("EROFS: read-only file system, open '/x'"): not twice.
    return new LoraspecError("E_IO", `${doing}${message}${path && !message.includes(path) ? ` (${path})` : ""}`, {
      file: path,
      hint: code === "EROFS" || code === "SQLITE_READONLY" ? "the file system is read-only: point the project at a writable folder" : "check the disk and the file system, then retry",
      details: { errno: code },
      retryable: true,
      cause: error,
    });
  }
  return undefined;
}

/**
 * After a trainer failed: was it the disk? A trainer on a full disk often cannot even print its
 * error (its log is on the same disk), so the free space is checked against what its next write
 * needs: the size of its newest checkpoint under `outputDir` (or `fallbackBytes` before the first).
 */
export function diskFullAfterFailure(params: { runDir: string; outputDir: string; fallbackBytes: number }): LoraspecError | undefined {
  const free = freeBytes(params.runDir);
  if (free === undefined) return undefined;
  const needed = newestCheckpointBytes(params.outputDir) ?? params.fallbackBytes;
  if (free >= needed) return undefined;
  return ioError(Object.assign(new Error("No space left on device"), { code: "ENOSPC" }), { path: params.runDir, neededBytes: needed, doing: "the trainer stopped" });
}

/** Bytes of the newest checkpoint (a folder or file) under `<outputDir>/checkpoints`, else of the largest entry of outputDir. */
function newestCheckpointBytes(outputDir: string): number | undefined {
  const entries = (dir: string) => {
    try {
      return readdirSync(dir).map((name) => {
        const path = join(dir, name);
        const s = statSync(path);
        return { path, mtime: s.mtimeMs, bytes: s.isDirectory() ? treeBytes(path) : s.size };
      });
    } catch {
      return [];
    }
  };
  const checkpoints = entries(join(outputDir, "checkpoints"));
  const pool = checkpoints.length > 0 ? checkpoints : entries(outputDir);
  if (pool.length === 0) return undefined;
  return checkpoints.length > 0 ? pool.reduce((a, b) => (b.mtime > a.mtime ? b : a)).bytes : Math.max(...pool.map((e) => e.bytes));
}

function treeBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const s = statSync(join(dir, name));
    total += s.isDirectory() ? treeBytes(join(dir, name)) : s.size;
  }
  return total;
}

/** Free bytes for unprivileged writers on the file system holding `path` (or its nearest parent). */
export function freeBytes(path: string): number | undefined {
  for (let p = path; ; p = dirname(p)) {
    try {
      const s = statfsSync(p);
      return Number(s.bavail) * Number(s.bsize);
    } catch {
      if (dirname(p) === p) return undefined;
    }
  }
}
