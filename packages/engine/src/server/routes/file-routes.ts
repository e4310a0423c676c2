import { readFile, stat } from "node:fs/promises";
import { basename, dirname, extname, join, resolve } from "node:path";
import { Hono, type Context } from "hono";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { AppContext } from "../app-context.js";
import type { ValidationReportsResponse } from "../api-types.js";
import { CONTENT_TYPES, PROJECT_FILE_TYPES } from "../http-helpers.js";
import { findFiles } from "../project-files.js";
import { readConfinedText } from "../../fs/confined-read.js";
import { openFileStream } from "../../fs/open-file-stream.js";
import { SERVER_LIMITS } from "../limits.js";

/**
 * Every file from the project is treated as hostile (reports and SVGs come with downloaded LoRAs
 * and datasets): served in a CSP sandbox without scripts and with an opaque origin, so nothing in
 * it can run code, let alone reach the API; types the page never shows inline are downloads.
 */
export const PROJECT_FILE_CSP =
  "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'self' 'unsafe-inline'; font-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'";

/** The page's CSP: own scripts only; inline styles for React style props and uPlot. */
const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'";

/** The URL path after `prefix`, each segment percent-decoded; a malformed escape is a 400, not a 500. */
export function decodedRest(c: Context, prefix: string): string {
  const raw = new URL(c.req.url).pathname.slice(prefix.length);
  try {
    return raw.split("/").map(decodeURIComponent).join("/");
  } catch {
    throw new LoraspecError("E_USAGE", `Malformed percent-encoding in "${raw.slice(0, 200)}".`, { field: "path" });
  }
}

/** Validation reports, project files (cookie or bearer at /files/, the files key at /pf/<key>/). */
export function fileRoutes(ctx: AppContext) {
  const serve = async (c: Context, rel: string) => {
    const full = await ctx.inside(rel);
    // Streamed, never read whole: a project holds multi-GB LoRAs and checkpoints (fs/open-file-stream.ts).
    const opened = await openFileStream({ file: full, range: (size) => byteRange(c.req.header("range"), size) }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT" || error.code === "ENOTDIR") throw new LoraspecError("E_FILE_NOT_FOUND", `No file "${rel}" in the project.`);
      if (error.code === "EISDIR" || error.code === "ENOTREG") throw new LoraspecError("E_FILE_NOT_FOUND", `"${rel}" is not a file.`);
      throw error;
    });
    const type = PROJECT_FILE_TYPES[extname(full).toLowerCase()];
    const headers: Record<string, string> = {
      "Content-Type": type ?? "application/octet-stream",
      "Content-Security-Policy": PROJECT_FILE_CSP,
      "Accept-Ranges": "bytes",
    };
    if (!type) headers["Content-Disposition"] = `attachment; filename="${basename(full).replace(/[^\w .()-]/g, "_")}"`;
    if ("unsatisfiable" in opened) return c.body(null, 416, { ...headers, "Content-Range": `bytes */${opened.size}` });
    const partial = opened.start !== 0 || opened.end !== opened.size - 1;
    headers["Content-Length"] = String(opened.end - opened.start + 1);
    if (partial) headers["Content-Range"] = `bytes ${opened.start}-${opened.end}/${opened.size}`;
    if (c.req.method === "HEAD") {
      await opened.stream.cancel();
      return c.body(null, partial ? 206 : 200, headers);
    }
    return c.body(opened.stream, partial ? 206 : 200, headers);
  };

  return new Hono()
    .get("/api/validation", async (c) => {
      const reports = await findFiles({ dir: ctx.projectDir, match: (n) => n === "report.html", skipHidden: true, maxDepth: 8 });
      const out: ValidationReportsResponse["reports"] = [];
      for (const r of reports) {
        const folder = dirname(r.path);
        // validate-lora writes validation.json (verdicts, scores) beside report.html.
        const summary = (await summaryJson(ctx, join(ctx.projectDir, folder, "validation.json"))) ?? (await summaryJson(ctx, join(ctx.projectDir, folder, "report.json")));
        out.push({ ...r, folder, summary });
      }
      return c.json<ValidationReportsResponse>({ reports: out });
    })
    // Path-style, so a report's relative links (its images) resolve inside the project.
    .get("/files/*", (c) => serve(c, decodedRest(c, "/files/")))
    .get("/pf/:key/*", (c) => {
      // The auth middleware let this through on the key; check it here too.
      if (c.req.param("key") !== ctx.filesKey) throw new LoraspecError("E_UNAUTHORIZED", "Wrong files key.");
      return serve(c, decodedRest(c, `/pf/${ctx.filesKey}/`));
    });
}

/**
 * The one byte range of a `Range: bytes=...` header (RFC 9110 §14.1.2), for resuming a download:
 * undefined (the whole file) without one, for a header this does not parse, or for several ranges;
 * "unsatisfiable" for a range starting past the end.
 */
export function byteRange(header: string | undefined, size: number): { start: number; end: number } | "unsatisfiable" | undefined {
  const m = header?.trim().match(/^bytes=(\d*)-(\d*)$/);
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    // bytes=-N: the last N bytes.
    const n = Number(m[2]);
    if (n === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size) return "unsatisfiable";
  if (end < start) return undefined;
  return { start, end };
}

/** A report's summary JSON, read confined and bounded: one that links outside, is too big or is not JSON is left out. */
async function summaryJson(ctx: AppContext, file: string): Promise<unknown> {
  const read = await readConfinedText({ file, confine: ctx.confine, maxBytes: SERVER_LIMITS.reportJsonBytes });
  if (read.kind !== "text" || read.truncated) return undefined;
  try {
    return JSON.parse(read.text);
  } catch {
    return undefined;
  }
}

/** The built page (packages/web/dist); any other GET path is the page itself (hash routes). */
export function webPageRoutes(webDist: string) {
  const dist = resolve(webDist);
  return new Hono().get("*", async (c) => {
    // A mistyped API path is a 404, not the page.
    if (c.req.path.startsWith("/api/")) throw new LoraspecError("E_FILE_NOT_FOUND", `No route for GET ${c.req.path}`);
    const rel = c.req.path.replace(/^\/+/, "");
    const segments = rel.split("/").filter(Boolean);
    let file = join(dist, "index.html");
    if (segments.length && !segments.includes("..") && CONTENT_TYPES[extname(rel).toLowerCase()]) {
      const candidate = join(dist, ...segments);
      if (candidate.startsWith(dist) && (await stat(candidate).then((s) => s.isFile(), () => false))) file = candidate;
    }
    const type = CONTENT_TYPES[extname(file).toLowerCase()] ?? "application/octet-stream";
    const headers: Record<string, string> = { "Content-Type": type };
    // The page loads only its own code; no third-party script can run in it.
    if (type.startsWith("text/html")) headers["Content-Security-Policy"] = PAGE_CSP;
    return c.body(new Uint8Array(await readFile(file)), 200, headers);
  });
}
