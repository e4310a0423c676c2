import { realpathSync } from "node:fs";
import { appendFile, cp, mkdir, open, readFile, readdir, rm, stat } from "node:fs/promises";
import { basename, dirname, extname, join, resolve } from "node:path";
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { parse as parseYaml } from "yaml";
import { LoraspecError, httpStatusFor, isLoraspecError } from "@loraspec/core/errors.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { requireToken } from "./auth.js";
import type { ServerDeps } from "./deps.js";
import { CONTENT_TYPES, notSupported, readJson, requireString } from "./http-helpers.js";
import { IMAGE_UPLOAD_TYPES, SERVER_LIMITS } from "./limits.js";
import { captionFileFor, contractBasics, findFiles, listImages, readContractText } from "./project-files.js";
import { VALIDATION_EVENTS_FILE, lossHistory, readEventsFrom, readJsonIfExists, tailFile } from "./run-files.js";
import { projectRelative, resolveInsideProject } from "./safe-path.js";

export interface CreateAppParams extends ServerDeps {
  /** The project folder: every file the API reads or writes is inside it. */
  projectDir: string;
  /** The access token every request must carry. */
  token: string;
  /** The contract file, relative to the project. */
  contractFile?: string;
  /** The built web page (packages/web/dist); omitted: API only. */
  webDist?: string;
  /** Example contracts (with their datasets) a new project can start from. */
  examplesDir?: string;
  /** Host names accepted in the Host header (set when bound to loopback). */
  allowedHosts?: readonly string[];
  /** How often a live event stream looks for new lines (ms). */
  pollMs?: number;
}

/** Merge methods (engine/lora/merge-lora.ts): cat is exact; the others run in the worker. */
const MERGE_METHODS = ["cat", "linear", "ties", "dare", "svd"];

/** The page's CSP: own scripts only; inline styles for React style props and uPlot. */
const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'";

/** States after which a run's event log stops growing. */
const FINAL_STATES = new Set(["succeeded", "failed", "cancelled", "interrupted"]);

/**
 * The HTTP API behind `loraspec ui`: web-standard Request/Response (hono), one error handler
 * mapping LoraspecError codes to statuses, SSE for live runs. No endpoint takes a command,
 * a URL to fetch or a path outside the project.
 */
export function createApp(params: CreateAppParams): Hono {
  // The real path: every path the API hands back is relative to it, symlinked /tmp or not.
  const projectDir = realOrResolved(params.projectDir);
  const contractRel = params.contractFile ?? "lora.yaml";
  const contractFile = join(projectDir, contractRel);
  const pollMs = params.pollMs ?? 400; // live enough for a loss chart, cheap for a 2-core box
  const app = new Hono();

  app.onError((error, c) => {
    const status = isLoraspecError(error) ? httpStatusFor(error) : 500;
    if (status === 401 && !c.req.path.startsWith("/api/") && (c.req.header("accept") ?? "").includes("text/html")) {
      // A person opened the page without the token: tell them how to get in, in words.
      return c.html(
        '<!doctype html><meta charset="utf-8"><title>loraspec</title><body style="font:14px system-ui;margin:40px;max-width:640px">' +
          "<h1>loraspec</h1><p>This page needs the access token. Open the URL that <code>loraspec ui</code> printed (it ends in <code>?token=...</code>).</p>",
        401,
      );
    }
    const body = isLoraspecError(error)
      ? { error: error.toJSON() }
      : { error: { code: "E_INTERNAL", message: error instanceof Error ? error.message : String(error) } };
    if (!isLoraspecError(error)) console.error(error);
    return c.json(body, status as 500);
  });
  app.notFound((c) => c.json({ error: { code: "E_FILE_NOT_FOUND", message: `No route for ${c.req.method} ${c.req.path}` } }, 404));

  app.use("*", requireToken({ token: params.token, allowedHosts: params.allowedHosts }));
  app.use("*", async (c, next) => {
    await next();
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    c.header("X-Frame-Options", "SAMEORIGIN");
  });
  const tooLarge = (limit: number) => () => {
    throw new LoraspecError("E_PAYLOAD_TOO_LARGE", `The request body is larger than ${limit} bytes.`);
  };
  app.use("/api/*", async (c, next) => {
    if (c.req.path === "/api/dataset/upload") return next();
    return bodyLimit({ maxSize: SERVER_LIMITS.jsonBytes, onError: tooLarge(SERVER_LIMITS.jsonBytes) })(c, next);
  });

  const inside = (path: string) => resolveInsideProject({ projectDir, path });
  const basics = async () => contractBasics(await readContractText(contractFile).catch(() => ""));
  const datasetDir = async () => inside((await basics()).datasetPath.replace(/^\.\//, "") || ".");

  // --- project and contract ---------------------------------------------------------------
  app.get("/api/project", async (c) => {
    const exists = await stat(contractFile).then(() => true, () => false);
    const examples = params.examplesDir ? await listExamples(params.examplesDir) : [];
    return c.json({ name: basename(projectDir), contractFile: contractRel, hasContract: exists, examples, capabilities: capabilities(params) });
  });

  app.post("/api/project/from-example", async (c) => {
    const body = await readJson<{ example?: unknown }>(c);
    const name = requireString(body.example, "example");
    if (!params.examplesDir) throw notSupported("Examples");
    if (!(await listExamples(params.examplesDir)).includes(name)) throw new LoraspecError("E_USAGE", `Unknown example "${name}".`, { field: "example" });
    // An example is a folder with lora.yaml (and its dataset), or a single .yaml file.
    const source = /\.ya?ml$/.test(name) ? join(params.examplesDir, name) : join(params.examplesDir, name, "lora.yaml");
    const text = await readFile(source, "utf8").catch(() => {
      throw new LoraspecError("E_FILE_NOT_FOUND", `Unknown example "${name}".`, { field: "example" });
    });
    const exists = await stat(contractFile).then(() => true, () => false);
    if (exists) throw new LoraspecError("E_FILE_EXISTS", `${contractRel} already exists; it is never overwritten.`, { file: contractRel });
    // The example's dataset comes along when it is a folder beside the example.
    const rel = contractBasics(text).datasetPath;
    const datasetSource = resolve(dirname(source), rel);
    const datasetTarget = await inside(rel.replace(/^\.\//, ""));
    if (await stat(datasetSource).then((s) => s.isDirectory(), () => false)) {
      if (!(await stat(datasetTarget).then(() => true, () => false))) {
        await cp(datasetSource, datasetTarget, { recursive: true, errorOnExist: true, force: false });
      }
    }
    await atomicWrite(contractFile, text);
    return c.json({ created: contractRel });
  });

  app.get("/api/contract", async (c) => {
    const text = await readContractText(contractFile);
    let contract: unknown;
    let error: unknown;
    try {
      contract = params.parseContract ? params.parseContract({ text, file: contractRel }) : undefined;
    } catch (e) {
      if (!isLoraspecError(e)) throw e;
      error = e.toJSON();
    }
    return c.json({ file: contractRel, yaml: text, contract, error });
  });

  app.put("/api/contract", async (c) => {
    const body = await readJson<{ yaml?: unknown }>(c);
    const text = requireString(body.yaml, "yaml");
    // Only a contract that parses is written: a half-typed form never replaces a good file.
    const contract = params.parseContract ? params.parseContract({ text, file: contractRel }) : undefined;
    await atomicWrite(contractFile, text);
    return c.json({ file: contractRel, contract });
  });

  // The dataset summary lint and plan use; scanned on demand (the folder may change any time).
  const datasetSummary = async (contract: unknown, signal?: AbortSignal) => {
    if (!params.scanDataset) return undefined;
    try {
      return (await params.scanDataset({ dir: await datasetDir(), contract, signal, quick: true })).summary;
    } catch (error) {
      if (isLoraspecError(error)) return undefined; // no dataset yet: lint and plan without it
      throw error;
    }
  };

  app.post("/api/lint", async (c) => {
    if (!params.lint || !params.parseContract) throw notSupported("Lint");
    const body = await readJson<{ yaml?: unknown }>(c);
    const contract = params.parseContract({ text: requireString(body.yaml, "yaml"), file: contractRel });
    const dataset = await datasetSummary(contract, c.req.raw.signal);
    return c.json({ findings: await params.lint({ contract, dataset }) });
  });

  app.post("/api/plan", async (c) => {
    if (!params.plan || !params.parseContract) throw notSupported("Plan");
    const body = await readJson<{ yaml?: unknown }>(c);
    const contract = params.parseContract({ text: requireString(body.yaml, "yaml"), file: contractRel });
    return c.json({ plan: params.plan({ contract, dataset: await datasetSummary(contract, c.req.raw.signal) }) });
  });

  app.get("/api/dataset/summary", async (c) => {
    let contract: unknown;
    try {
      contract = params.parseContract?.({ text: await readContractText(contractFile), file: contractRel });
    } catch {
      contract = undefined;
    }
    return c.json({ summary: (await datasetSummary(contract, c.req.raw.signal)) ?? null });
  });

  // --- dataset and captions ---------------------------------------------------------------
  app.get("/api/dataset", async (c) => {
    const b = await basics();
    const dir = await datasetDir();
    const images = await listImages(dir);
    let problems: Record<string, Array<{ code: string; message: string }>> = {};
    let summary: unknown;
    if (params.scanDataset) {
      let contract: unknown;
      try {
        contract = params.parseContract?.({ text: await readContractText(contractFile), file: contractRel });
      } catch {
        contract = undefined; // a contract mid-edit still lets the dataset be browsed
      }
      const scan = await params.scanDataset({ dir, contract, signal: c.req.raw.signal });
      problems = scan.problems;
      summary = scan.summary;
    }
    const sharp = (await import("sharp")).default;
    const rows = await Promise.all(
      images.map(async (rel) => {
        const full = join(dir, rel);
        const captionRel = captionFileFor(rel, b.captionExtension);
        const caption = await readFile(join(dir, captionRel), "utf8").catch(() => null);
        const own = [...(problems[rel] ?? [])];
        let width: number | undefined;
        let height: number | undefined;
        try {
          const meta = await sharp(full, { limitInputPixels: SERVER_LIMITS.maxInputPixels }).metadata();
          width = meta.width;
          height = meta.height;
        } catch (error) {
          if (!own.some((p) => p.code === "unreadable")) own.push({ code: "unreadable", message: `Cannot be decoded: ${(error as Error).message}` });
        }
        if (!params.scanDataset && b.resolution && width && height && Math.min(width, height) < b.resolution && !own.some((p) => p.code === "too_small")) {
          own.push({ code: "too-small", message: `${width}x${height} is below the training resolution ${b.resolution}.` });
        }
        if (caption === null && !own.some((p) => p.code === "caption-missing")) own.push({ code: "no-caption", message: `No ${b.captionExtension} caption.` });
        const size = (await stat(full)).size;
        return { path: rel, bytes: size, width, height, caption, captionFile: captionRel, problems: own };
      }),
    );
    return c.json({
      dir: projectRelative(projectDir, dir) || ".",
      trigger: b.trigger,
      captionStyle: b.captionStyle,
      captionExtension: b.captionExtension,
      resolution: b.resolution,
      crop: b.crop,
      images: rows,
      summary,
    });
  });

  // Dataset images are confined twice: to the project (the dataset folder) and to the dataset.
  const datasetImage = async (c: Context) =>
    resolveInsideProject({ projectDir: await datasetDir(), path: requireString(c.req.query("path"), "path") });

  app.get("/api/dataset/thumb", async (c) => {
    const full = await datasetImage(c);
    const sharp = (await import("sharp")).default;
    const px = SERVER_LIMITS.thumbnailPx;
    const out = await sharp(full, { limitInputPixels: SERVER_LIMITS.maxInputPixels })
      .rotate()
      .resize(px, px, { fit: "inside", withoutEnlargement: true })
      .webp({ quality: 80 })
      .toBuffer()
      .catch((error: Error) => {
        throw new LoraspecError("E_IMAGE_UNREADABLE", `Cannot decode ${c.req.query("path")}: ${error.message}`);
      });
    return c.body(new Uint8Array(out), 200, { "Content-Type": "image/webp", "Cache-Control": "private, max-age=60" });
  });

  app.get("/api/dataset/crop", async (c) => {
    const full = await datasetImage(c);
    const b = await basics();
    const mode = c.req.query("mode") === "attention" || (!c.req.query("mode") && b.crop === "attention") ? "attention" : "center";
    const sharp = (await import("sharp")).default;
    const px = SERVER_LIMITS.thumbnailPx;
    // The same square crop training will use (dataset.crop): centre, or sharp's attention strategy.
    const out = await sharp(full, { limitInputPixels: SERVER_LIMITS.maxInputPixels })
      .rotate()
      .resize(px, px, { fit: "cover", position: mode === "attention" ? sharp.strategy.attention : "centre" })
      .webp({ quality: 80 })
      .toBuffer()
      .catch((error: Error) => {
        throw new LoraspecError("E_IMAGE_UNREADABLE", `Cannot decode ${c.req.query("path")}: ${error.message}`);
      });
    return c.body(new Uint8Array(out), 200, { "Content-Type": "image/webp" });
  });

  app.put("/api/captions", async (c) => {
    const body = await readJson<{ items?: unknown }>(c);
    if (!Array.isArray(body.items) || body.items.length === 0) {
      throw new LoraspecError("E_USAGE", '"items" must be a non-empty list of {image, text}.', { field: "items" });
    }
    const b = await basics();
    const dir = await datasetDir();
    const known = new Set(await listImages(dir));
    const writes: Array<{ file: string; text: string; captionFile: string }> = [];
    for (const item of body.items as Array<{ image?: unknown; text?: unknown }>) {
      const image = requireString(item?.image, "items[].image");
      if (typeof item.text !== "string") throw new LoraspecError("E_USAGE", '"items[].text" must be a string.', { field: "items[].text" });
      if (!known.has(image)) throw new LoraspecError("E_FILE_NOT_FOUND", `No image "${image}" in the dataset.`, { field: "items[].image" });
      const captionRel = captionFileFor(image, b.captionExtension);
      const file = await inside(projectRelative(projectDir, join(dir, ...captionRel.split("/"))));
      writes.push({ file, text: item.text.trim() + "\n", captionFile: captionRel });
    }
    // Validate everything first, then write: a bad item never leaves half the edits on disk.
    for (const w of writes) await atomicWrite(w.file, w.text);
    return c.json({ written: writes.map((w) => w.captionFile) });
  });

  app.post("/api/captions/auto", async (c) => {
    if (!params.autoCaption) throw notSupported("Auto-captioning");
    const body = await readJson<{ images?: unknown }>(c);
    if (!Array.isArray(body.images) || !body.images.every((x) => typeof x === "string")) {
      throw new LoraspecError("E_USAGE", '"images" must be a list of image paths.', { field: "images" });
    }
    const dir = await datasetDir();
    const known = new Set(await listImages(dir));
    for (const image of body.images as string[]) {
      if (!known.has(image)) throw new LoraspecError("E_FILE_NOT_FOUND", `No image "${image}" in the dataset.`);
    }
    const text = await readContractText(contractFile);
    const b = contractBasics(text);
    const target = (parseYaml(text) as { target?: unknown } | null)?.target;
    const result = await params.autoCaption({
      dir,
      images: body.images as string[],
      trigger: b.trigger,
      style: b.captionStyle,
      target: target === "style" || target === "product" ? target : "character",
      signal: c.req.raw.signal,
    });
    return c.json(result);
  });

  app.post(
    "/api/dataset/upload",
    bodyLimit({ maxSize: SERVER_LIMITS.uploadBytes, onError: tooLarge(SERVER_LIMITS.uploadBytes) }),
    async (c) => {
      const type = c.req.header("content-type") ?? "";
      if (!/^multipart\/form-data\b/i.test(type)) {
        throw new LoraspecError("E_UNSUPPORTED_MEDIA_TYPE", `Uploads are multipart/form-data, got "${type || "nothing"}".`);
      }
      const form = await c.req.formData();
      const files = form.getAll("file").filter((f): f is File => typeof f !== "string");
      if (files.length === 0) throw new LoraspecError("E_USAGE", 'No "file" field in the upload.', { field: "file" });
      const dir = await datasetDir();
      const checked: Array<{ name: string; data: Uint8Array }> = [];
      for (const file of files) {
        const data = new Uint8Array(await file.arrayBuffer());
        const name = basename(file.name.replace(/\\/g, "/"));
        const kind = IMAGE_UPLOAD_TYPES.find((t) => t.ext.includes(extname(name).toLowerCase()));
        if (!kind || !kind.magic(data) || (file.type && file.type !== kind.mime)) {
          throw new LoraspecError("E_UNSUPPORTED_MEDIA_TYPE", `"${name}" is not a PNG, JPEG or WebP image.`, { file: name });
        }
        if (!/^[A-Za-z0-9][A-Za-z0-9 ._()-]*$/.test(name)) throw new LoraspecError("E_USAGE", `Unsafe file name "${name}".`, { file: name });
        checked.push({ name, data });
      }
      const sharp = (await import("sharp")).default;
      for (const { name, data } of checked) {
        await sharp(data, { limitInputPixels: SERVER_LIMITS.maxInputPixels, failOn: "error" })
          .metadata()
          .catch((error: Error) => {
            throw new LoraspecError("E_UNSUPPORTED_MEDIA_TYPE", `"${name}" cannot be decoded: ${error.message}`, { file: name });
          });
      }
      await mkdir(dir, { recursive: true });
      const added: string[] = [];
      for (const { name, data } of checked) {
        const target = await inside(projectRelative(projectDir, join(dir, name)));
        // `wx`: an upload never replaces a user's file.
        const handle = await open(target, "wx").catch((error: NodeJS.ErrnoException) => {
          if (error.code === "EEXIST") throw new LoraspecError("E_FILE_EXISTS", `"${name}" already exists in the dataset.`, { file: name });
          throw error;
        });
        try {
          await handle.writeFile(data);
          await handle.sync();
        } finally {
          await handle.close();
        }
        added.push(name);
      }
      return c.json({ added });
    },
  );

  // --- runs ---------------------------------------------------------------------------------
  const runs = () => {
    if (!params.runs) throw notSupported("Runs");
    return params.runs;
  };
  // Paths go to the browser relative to the project (what /files/ serves).
  const runView = (r: Awaited<ReturnType<NonNullable<ServerDeps["runs"]>["get"]>>) => ({
    ...r,
    runDir: projectRelative(projectDir, r.runDir),
    outputPath: r.outputPath ? projectRelative(projectDir, resolve(projectDir, r.outputPath)) : r.outputPath,
  });

  app.get("/api/runs", async (c) => c.json({ runs: (await runs().list()).map(runView) }));
  app.post("/api/runs", async (c) => c.json(await runs().start({ contractFile }), 201));
  app.get("/api/runs/:id", async (c) => c.json({ run: runView(await runs().get(c.req.param("id"))) }));
  app.post("/api/runs/:id/stop", async (c) => {
    await runs().stop(c.req.param("id"));
    return c.json({ stopped: c.req.param("id") });
  });
  app.post("/api/runs/:id/resume", async (c) => c.json(await runs().resume(c.req.param("id"))));

  app.get("/api/runs/:id/loss", async (c) => {
    const run = await runs().get(c.req.param("id"));
    const since = c.req.query("since_step");
    const stride = c.req.query("stride");
    return c.json(await lossHistory({ runDir: run.runDir, sinceStep: since ? Number(since) : undefined, stride: stride ? Number(stride) : undefined }));
  });

  app.get("/api/runs/:id/samples", async (c) => {
    const run = await runs().get(c.req.param("id"));
    const { events } = await readEventsFrom({ runDir: run.runDir, offset: 0 });
    const samples = [];
    for (const { event } of events) {
      if (event.type !== "sample") continue;
      const abs = resolve(run.runDir, event.path);
      samples.push({ ...event, path: projectRelative(projectDir, abs) });
    }
    return c.json({ samples });
  });

  app.get("/api/runs/:id/log", async (c) => {
    const run = await runs().get(c.req.param("id"));
    const lines = Math.min(Number(c.req.query("lines") ?? 200) || 200, SERVER_LIMITS.logTailLines);
    const logs = await findFiles({ dir: run.runDir, match: (n) => n.endsWith(".log"), maxDepth: 2 });
    const newest = logs[0];
    if (!newest) return c.json({ file: null, lines: [] });
    return c.json({ file: newest.path, lines: await tailFile({ file: join(run.runDir, newest.path), lines }) });
  });

  // A live event log as SSE: replay from the byte offset the client has (Last-Event-ID), then
  // follow the file until `finished()` says nothing more will be written.
  const followLog = (c: Context, runDir: string, name: string | undefined, status: () => Promise<{ state: string; finished: boolean }>) => {
    // Last-Event-ID is the byte offset already seen: a reconnect resumes where it left off.
    const lastId = Number(c.req.header("last-event-id") ?? c.req.query("offset") ?? 0);
    let offset = Number.isFinite(lastId) && lastId > 0 ? lastId : 0;
    return streamSSE(c, async (stream) => {
      let aborted = false;
      stream.onAbort(() => {
        aborted = true;
      });
      let quietAfterEnd = 0;
      while (!aborted) {
        const read = await readEventsFrom({ runDir, offset, name });
        for (const { event, end } of read.events) {
          await stream.writeSSE({ data: JSON.stringify(event), event: "event", id: String(end) });
        }
        offset = read.offset;
        const { state, finished } = await status();
        await stream.writeSSE({ data: JSON.stringify({ state }), event: "state" });
        if (finished) {
          // One more read after the final state, so lines flushed at exit are not lost.
          if (read.events.length === 0 && ++quietAfterEnd >= 2) break;
        } else quietAfterEnd = 0;
        await stream.sleep(pollMs);
      }
      await stream.writeSSE({ data: "{}", event: "end" });
    });
  };

  app.get("/api/runs/:id/events", async (c) => {
    const id = c.req.param("id");
    const run = await runs().get(id);
    return followLog(c, run.runDir, undefined, async () => {
      const state = (await runs().get(id)).state;
      return { state, finished: FINAL_STATES.has(state) };
    });
  });

  // Validation of a run from the page: one at a time, in the background, its events in the
  // run folder so the page can follow (and re-follow) it like the run itself.
  const validating = new Map<string, AbortController>();
  app.post("/api/runs/:id/validate", async (c) => {
    if (!params.validation) throw notSupported("Validation");
    const id = c.req.param("id");
    const run = await runs().get(id);
    const body = c.req.header("content-type") ? await readJson<{ checkpoints?: unknown }>(c) : {};
    if (validating.size > 0) throw new LoraspecError("E_RUN_STATE", "A validation is already running.", { hint: "Wait for it to finish." });
    const file = join(run.runDir, VALIDATION_EVENTS_FILE);
    await rm(file, { force: true });
    const controller = new AbortController();
    validating.set(id, controller);
    const stream = params.validation.validate({ contractFile, runId: id, checkpoints: body.checkpoints === true, signal: controller.signal });
    void (async () => {
      try {
        for await (const event of stream) await appendFile(file, `${JSON.stringify(event)}\n`);
      } catch (error) {
        const e = isLoraspecError(error) ? error : new LoraspecError("E_INTERNAL", error instanceof Error ? error.message : String(error));
        await appendFile(file, `${JSON.stringify({ type: "error", code: e.code, message: e.message, hint: e.hint })}\n`);
      } finally {
        validating.delete(id);
      }
    })();
    return c.json({ started: id }, 202);
  });

  app.get("/api/runs/:id/validate/events", async (c) => {
    const id = c.req.param("id");
    const run = await runs().get(id);
    return followLog(c, run.runDir, VALIDATION_EVENTS_FILE, async () => {
      const active = validating.has(id);
      return { state: active ? "running" : "finished", finished: !active };
    });
  });

  // --- validation reports and project files -------------------------------------------------
  app.get("/api/validation", async (c) => {
    const reports = await findFiles({ dir: projectDir, match: (n) => n === "report.html", skipHidden: true, maxDepth: 8 });
    const out = [];
    for (const r of reports) {
      const folder = dirname(r.path);
      // validate-lora writes validation.json (verdicts, scores) beside report.html.
      const summary = (await readJsonIfExists(join(projectDir, folder, "validation.json"))) ?? (await readJsonIfExists(join(projectDir, folder, "report.json")));
      out.push({ ...r, folder, summary });
    }
    return c.json({ reports: out });
  });

  // Files under the project, path-style so a report's relative links (images) resolve.
  app.get("/files/*", async (c) => {
    const rel = decodeURIComponent(c.req.path.slice("/files/".length));
    const full = await inside(rel);
    const info = await stat(full).catch(() => {
      throw new LoraspecError("E_FILE_NOT_FOUND", `No file "${rel}" in the project.`);
    });
    if (!info.isFile()) throw new LoraspecError("E_FILE_NOT_FOUND", `"${rel}" is not a file.`);
    const type = CONTENT_TYPES[extname(full).toLowerCase()];
    const headers: Record<string, string> = { "Content-Type": type ?? "application/octet-stream" };
    if (!type) headers["Content-Disposition"] = `attachment; filename="${basename(full).replace(/"/g, "")}"`;
    if (type?.startsWith("text/html")) {
      // Reports are our own HTML; still, no scripts from elsewhere and no network from them.
      headers["Content-Security-Policy"] = "default-src 'self' 'unsafe-inline' data:; connect-src 'none'";
    }
    return c.body(new Uint8Array(await readFile(full)), 200, headers);
  });

  // --- LoRA files ------------------------------------------------------------------------------
  const lora = () => {
    if (!params.lora) throw notSupported("LoRA tools");
    return params.lora;
  };
  app.get("/api/lora/files", async (c) =>
    c.json({ files: await findFiles({ dir: projectDir, match: (n) => n.endsWith(".safetensors"), skipHidden: true, maxDepth: 8 }) }),
  );
  app.post("/api/lora/inspect", async (c) => {
    const body = await readJson<{ path?: unknown }>(c);
    return c.json({ result: await lora().inspect({ path: await inside(requireString(body.path, "path")) }) });
  });
  app.post("/api/lora/convert", async (c) => {
    const body = await readJson<{ path?: unknown; to?: unknown; out?: unknown }>(c);
    const out = await inside(requireString(body.out, "out"));
    if (!out.endsWith(".safetensors")) throw new LoraspecError("E_USAGE", "The output must be a .safetensors file.", { field: "out" });
    const result = await lora().convert({ path: await inside(requireString(body.path, "path")), to: requireString(body.to, "to"), out });
    return c.json({ result, out: projectRelative(projectDir, out) });
  });
  app.post("/api/lora/merge", async (c) => {
    const body = await readJson<{ inputs?: unknown; out?: unknown; method?: unknown; to?: unknown }>(c);
    if (!Array.isArray(body.inputs) || body.inputs.length === 0) throw new LoraspecError("E_USAGE", '"inputs" must list {path, weight}.', { field: "inputs" });
    const inputs = [];
    for (const item of body.inputs as Array<{ path?: unknown; weight?: unknown }>) {
      const weight = Number(item?.weight);
      if (!Number.isFinite(weight)) throw new LoraspecError("E_USAGE", "Each input needs a numeric weight.", { field: "inputs[].weight" });
      inputs.push({ path: await inside(requireString(item?.path, "inputs[].path")), weight });
    }
    const out = await inside(requireString(body.out, "out"));
    if (!out.endsWith(".safetensors")) throw new LoraspecError("E_USAGE", "The output must be a .safetensors file.", { field: "out" });
    const method = body.method === undefined ? "cat" : requireString(body.method, "method");
    if (!MERGE_METHODS.includes(method)) throw new LoraspecError("E_USAGE", `"method" must be one of ${MERGE_METHODS.join(", ")}.`, { field: "method" });
    if (inputs.some((i) => i.path === out)) throw new LoraspecError("E_USAGE", "The output would overwrite an input.", { field: "out" });
    const to = typeof body.to === "string" && body.to ? body.to : undefined;
    return c.json({ result: await lora().merge({ inputs, out, method, to }), out: projectRelative(projectDir, out) });
  });

  // --- the web page ----------------------------------------------------------------------------
  if (params.webDist) {
    const dist = resolve(params.webDist);
    app.get("*", async (c) => {
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
  return app;
}

function capabilities(deps: ServerDeps): Record<string, boolean> {
  return {
    lint: Boolean(deps.lint),
    plan: Boolean(deps.plan),
    scanDataset: Boolean(deps.scanDataset),
    autoCaption: Boolean(deps.autoCaption),
    runs: Boolean(deps.runs),
    lora: Boolean(deps.lora),
    validation: Boolean(deps.validation),
  };
}

/** Example folders that hold a lora.yaml, and loose example .yaml files, by name. */
async function listExamples(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const e of entries) {
    if (e.isFile() && /^[A-Za-z0-9._-]+\.ya?ml$/.test(e.name)) out.push(e.name);
    else if (e.isDirectory() && /^[A-Za-z0-9._-]+$/.test(e.name) && (await stat(join(dir, e.name, "lora.yaml")).then((s) => s.isFile(), () => false))) {
      out.push(e.name);
    }
  }
  return out.sort();
}

function realOrResolved(dir: string): string {
  try {
    return realpathSync(resolve(dir));
  } catch {
    return resolve(dir);
  }
}
