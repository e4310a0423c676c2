import { realpath } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";

/**
 * Resolves a path a browser sent (relative to the project folder) and refuses anything that
 * ends up outside it: `..` segments, absolute paths (POSIX, Windows drive letters, UNC), NUL
 * bytes and symlinks that point out. The lessons of the Gradio and ComfyUI path-traversal
 * reports (reference/perf-reliability.md §4e): check after realpath, reject absolute segments.
 */
export async function resolveInsideProject(params: { projectDir: string; path: string }): Promise<string> {
  const { projectDir, path } = params;
  const refuse = (why: string) =>
    new LoraspecError("E_PATH_OUTSIDE_PROJECT", `Refused path "${path}": ${why}.`, {
      field: "path",
      hint: "Only files inside the project folder can be read or written.",
    });
  if (typeof path !== "string" || path.length === 0) throw refuse("empty path");
  if (path.includes("\0")) throw refuse("it contains a NUL byte");
  // Absolute in any OS's syntax: /x, \x, C:\x, C:x, \\server\share.
  if (isAbsolute(path) || /^[\\/]/.test(path) || /^[a-zA-Z]:/.test(path)) throw refuse("absolute paths are not accepted");
  const segments = path.split(/[\\/]+/);
  if (segments.includes("..")) throw refuse("it leaves the project folder");
  const root = await realpath(resolve(projectDir));
  const target = resolve(root, ...segments);
  if (!isInside(root, target)) throw refuse("it leaves the project folder");
  // Follow symlinks: the real file (or, for a new file, its nearest existing parent) must be inside too.
  const real = await realpathOfExisting(target);
  if (!isInside(root, real)) throw refuse("a symlink points outside the project folder");
  return target;
}

function isInside(root: string, target: string): boolean {
  if (target === root) return true;
  const rel = relative(root, target);
  return rel !== "" && !rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel);
}

async function realpathOfExisting(target: string): Promise<string> {
  let current = target;
  const rest: string[] = [];
  for (;;) {
    try {
      const real = await realpath(current);
      return rest.length ? resolve(real, ...rest.reverse()) : real;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
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
