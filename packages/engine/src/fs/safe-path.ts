import { lstatSync, realpathSync } from "node:fs";
import { lstat, realpath } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";

/**
 * Resolves a path a browser sent (relative to the project folder) and refuses anything that
 * ends up outside it: `..` segments, absolute paths (POSIX, Windows drive letters, UNC), NUL
 * bytes and symlinks that point out. The lessons of the Gradio and ComfyUI path-traversal
 * reports (reference/perf-reliability.md §4e): check after realpath, reject absolute segments.
 */
export async function resolveInsideProject(params: { projectDir: string; path: string }): Promise<string> {
  const { root, target } = lexicalCheck(params, await realpath(resolve(params.projectDir)));
  // Follow symlinks: the real file (or, for a new file, its nearest existing parent) must be inside too.
  const real = await realpathOfExisting(target, (p) => realpath(p), params.path);
  if (!isInside(root, real)) throw refusal(params.path, "a symlink points outside the project folder");
  return target;
}

/** The same checks, synchronously: for code that cannot await (the run store's row mapping). */
export function resolveInsideProjectSync(params: { projectDir: string; path: string }): string {
  const { root, target } = lexicalCheck(params, realpathSync(resolve(params.projectDir)));
  let real = target;
  for (let current = target, rest: string[] = []; ; ) {
    try {
      real = rest.length ? resolve(realpathSync(current), ...rest.reverse()) : realpathSync(current);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ELOOP") throw refusal(params.path, "a symlink loops and cannot be checked");
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      if (existsAsLink(current)) throw refusal(params.path, "it is a symlink to nothing (a write would follow it)");
      const parent = dirname(current);
      if (parent === current) break;
      rest.push(current.slice(parent.length + (parent.endsWith(sep) ? 0 : 1)));
      current = parent;
    }
  }
  if (!isInside(root, real)) throw refusal(params.path, "a symlink points outside the project folder");
  return target;
}

function existsAsLink(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function refusal(path: string, why: string): LoraspecError {
  return new LoraspecError("E_PATH_OUTSIDE_PROJECT", `Refused path "${path}": ${why}.`, {
    field: "path",
    hint: "Only files inside the project folder can be read or written.",
  });
}

/** Refuses what is wrong before touching the disk; returns the project's real root and the target in it. */
function lexicalCheck(params: { projectDir: string; path: string }, root: string): { root: string; target: string } {
  const { path } = params;
  if (typeof path !== "string" || path.length === 0) throw refusal(path, "empty path");
  if (path.includes("\0")) throw refusal(path, "it contains a NUL byte");
  // Absolute in any OS's syntax: /x, \x, C:\x, C:x, \\server\share.
  if (isAbsolute(path) || /^[\\/]/.test(path) || /^[a-zA-Z]:/.test(path)) throw refusal(path, "absolute paths are not accepted");
  const segments = path.split(/[\\/]+/);
  if (segments.includes("..")) throw refusal(path, "it leaves the project folder");
  const target = resolve(root, ...segments);
  if (!isInside(root, target)) throw refusal(path, "it leaves the project folder");
  return { root, target };
}

function isInside(root: string, target: string): boolean {
  if (target === root) return true;
  const rel = relative(root, target);
  return rel !== "" && !rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel);
}

async function realpathOfExisting(target: string, real: (p: string) => Promise<string>, shown: string): Promise<string> {
  let current = target;
  const rest: string[] = [];
  for (;;) {
    try {
      const found = await real(current);
      return rest.length ? resolve(found, ...rest.reverse()) : found;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ELOOP") throw refusal(shown, "a symlink loops and cannot be checked");
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      // ENOENT on a name that exists is a dangling symlink: where it points cannot be checked, and a write would follow it.
      if (await lstat(current).then(() => true, () => false)) throw refusal(shown, "it is a symlink to nothing (a write would follow it)");
      const parent = dirname(current);
      if (parent === current) return target;
      rest.push(current.slice(parent.length + (parent.endsWith(sep) ? 0 : 1)));
      current = parent;
    }
  }
}

/** The path relative to the project, with forward slashes, for sending back to the browser. */
export function projectRelative(projectDir: string, absolute: string): string {
  return relative(projectDir, absolute).split(sep).join("/");
}
