import { basename } from "node:path";
import type { Context } from "hono";
import { LoraspecError } from "@loraspec/core/errors.js";

/** Reads a JSON body; anything not declared as JSON is refused (415) rather than guessed at. */
export async function readJson<T = Record<string, unknown>>(c: Context): Promise<T> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new LoraspecError("E_UNSUPPORTED_MEDIA_TYPE", `Expected application/json, got "${type || "nothing"}".`);
  }
  try {
    return (await c.req.json()) as T;
  } catch (error) {
    throw new LoraspecError("E_USAGE", "The request body is not valid JSON.", { cause: error });
  }
}

/**
 * Writes to the API carry JSON or nothing. A form or a text/plain "simple" POST (the kind another
 * page can send without a CORS preflight) is refused before any route runs, even one that reads no
 * body (start a run, stop one), so no write depends on each route remembering to check.
 */
export function refuseNonJsonWrite(c: Context): void {
  if (["GET", "HEAD", "OPTIONS"].includes(c.req.method)) return;
  const type = c.req.header("content-type");
  const length = c.req.header("content-length");
  const hasBody = (length !== undefined && length !== "0") || c.req.header("transfer-encoding") !== undefined;
  if ((type !== undefined || hasBody) && !/^application\/json\b/i.test(type ?? "")) {
    throw new LoraspecError("E_UNSUPPORTED_MEDIA_TYPE", `Writes send application/json or no body, got "${type ?? "a body without a type"}".`);
  }
}

/** File-system failures a hostile or odd project can cause, as the coded errors the API reports. */
const ERRNO_CODES: Readonly<Record<string, { code: "E_FILE_NOT_FOUND" | "E_PATH_OUTSIDE_PROJECT" | "E_IO" | "E_DISK_FULL"; what: string }>> = {
  ENOENT: { code: "E_FILE_NOT_FOUND", what: "does not exist" },
  ENOTDIR: { code: "E_FILE_NOT_FOUND", what: "does not exist (a file where a folder should be)" },
  EISDIR: { code: "E_FILE_NOT_FOUND", what: "is a folder, not a file" },
  ELOOP: { code: "E_PATH_OUTSIDE_PROJECT", what: "is a symlink loop" },
  EACCES: { code: "E_IO", what: "cannot be read or written (permissions)" },
  EPERM: { code: "E_IO", what: "cannot be read or written (permissions)" },
  ENOSPC: { code: "E_DISK_FULL", what: "cannot be written: the disk is full" },
};

/**
 * An uncoded error a route let through, as a coded one: a Node file-system error names the file
 * relative to the project (never the absolute path of the user's machine); anything else is
 * E_INTERNAL with its one-line message. Never a stack.
 */
export function codedError(error: unknown, projectDir: string): LoraspecError {
  const e = error as NodeJS.ErrnoException;
  const mapped = typeof e?.code === "string" ? ERRNO_CODES[e.code] : undefined;
  const shown = (path: string) => (path.startsWith(`${projectDir}/`) ? path.slice(projectDir.length + 1) : path === projectDir ? "." : basename(path));
  if (mapped && typeof e.path === "string") {
    return new LoraspecError(mapped.code, `"${shown(e.path)}" ${mapped.what}.`, { file: shown(e.path) });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new LoraspecError("E_INTERNAL", message.split(`${projectDir}/`).join("").split("\n")[0]!.slice(0, 500));
}

export function requireString(value: unknown, field: string): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new LoraspecError("E_USAGE", `"${field}" must be a non-empty string.`, { field });
  }
  return value;
}

export function notSupported(what: string): LoraspecError {
  return new LoraspecError("E_NOT_SUPPORTED", `${what} is not available in this build of the server.`);
}

/** Content types the file routes serve; anything else is sent as a download, never rendered. */
export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".jsonl": "text/plain; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".log": "text/plain; charset=utf-8",
  ".yaml": "text/plain; charset=utf-8",
  ".toml": "text/plain; charset=utf-8",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".webp": "image/webp",
  ".svg": "image/svg+xml",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".woff2": "font/woff2",
  ".ico": "image/x-icon",
};

/**
 * Types project files are served as (always under the sandbox CSP): images and reports render,
 * text shows as text (never as script or style: a project's .js is text/plain, and nosniff
 * keeps the browser from running it); anything else is a download.
 */
export const PROJECT_FILE_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".webp": "image/webp",
  ".json": "application/json; charset=utf-8",
  ".jsonl": "text/plain; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".log": "text/plain; charset=utf-8",
  ".yaml": "text/plain; charset=utf-8",
  ".yml": "text/plain; charset=utf-8",
  ".toml": "text/plain; charset=utf-8",
};

/** The bodyLimit error: a coded 413 instead of hono's plain text. */
export function tooLarge(limit: number) {
  return (): never => {
    throw new LoraspecError("E_PAYLOAD_TOO_LARGE", `The request body is larger than ${limit} bytes.`);
  };
}
