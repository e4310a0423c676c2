import { appendFile, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Hono, type Context } from "hono";
import { streamSSE } from "hono/streaming";
import { LoraspecError, isLoraspecError } from "@loraspec/core/errors.js";
import type { AppContext } from "../app-context.js";
import type { LossResponse, RunLogResponse, RunResponse, RunView, RunsResponse, SamplesResponse } from "../api-types.js";
import type { RunSummary } from "../deps.js";
import { notSupported, readJson } from "../http-helpers.js";
import { SERVER_LIMITS } from "../limits.js";
import { EVENTS_FILE, VALIDATION_EVENTS_FILE, lossHistory, readEventsFrom, tailFile } from "../../run/run-files.js";
import { projectRelative } from "../../fs/safe-path.js";
import { runSamples } from "../run-samples.js";

/** States after which a run's event log stops growing. */
const FINAL_STATES = new Set(["succeeded", "failed", "cancelled", "interrupted"]);

/**
 * The run's own logs, most telling first: the supervisor's log, then the trainer's raw stderr
 * and stdout. Only the run folder's top level: validation/ and checkpoints keep their own logs.
 */
const RUN_LOGS = ["run.log", "stderr.log", "stdout.log"];

/** Terminal control sequences (tqdm's cursor moves, colours) that a log tail shows as noise. */
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]/g;

/** Runs: list, start, stop, resume, their loss, samples, log and live events, validation. Mounted at /api/runs. */
export function runsRoutes(ctx: AppContext) {
  const { params, projectDir, contractFile } = ctx;
  const runs = () => {
    if (!params.runs) throw notSupported("Runs");
    return params.runs;
  };
  /** A run with its folder confined to the project (the database is a file in it, and may lie). */
  const getRun = async (id: string) => {
    const run = await runs().get(id);
    const runDir = await ctx.confine(run.runDir);
    // The event logs the routes read (and validation appends to) are confined too: a link out is refused.
    for (const name of [EVENTS_FILE, VALIDATION_EVENTS_FILE]) await ctx.confine(join(runDir, name));
    return { ...run, runDir };
  };
  // Paths go to the browser relative to the project (what /files/ serves).
  const view = (r: RunSummary): RunView => ({
    ...r,
    runDir: projectRelative(projectDir, resolve(projectDir, r.runDir)),
    outputPath: r.outputPath ? projectRelative(projectDir, resolve(projectDir, r.outputPath)) : r.outputPath,
  });
  const validating = new Map<string, AbortController>();

  return new Hono()
    .get("/", async (c) => c.json<RunsResponse>({ runs: (await runs().list()).map(view) }))
    .post("/", async (c) => c.json(await runs().start({ contractFile }), 201))
    .get("/:id", async (c) => c.json<RunResponse>({ run: view(await getRun(c.req.param("id"))) }))
    .post("/:id/stop", async (c) => {
      await runs().stop(c.req.param("id"));
      return c.json({ stopped: c.req.param("id") });
    })
    .post("/:id/resume", async (c) => c.json(await runs().resume(c.req.param("id"))))
    .get("/:id/loss", async (c) => {
      const run = await getRun(c.req.param("id"));
      const since = c.req.query("since_step");
      const stride = c.req.query("stride");
      return c.json<LossResponse>(
        await lossHistory({ runDir: run.runDir, sinceStep: since ? Number(since) : undefined, stride: stride ? Number(stride) : undefined }),
      );
    })
    .get("/:id/samples", async (c) => {
      const run = await getRun(c.req.param("id"));
      return c.json<SamplesResponse>({ samples: await runSamples({ runDir: run.runDir, projectDir }) });
    })
    .get("/:id/log", async (c) => {
      const run = await getRun(c.req.param("id"));
      const lines = Math.min(Number(c.req.query("lines") ?? 200) || 200, SERVER_LIMITS.logTailLines);
      for (const name of RUN_LOGS) {
        // Confined like the run folder: a run.log that links outside the project is not read.
        const file = await ctx.confine(join(run.runDir, name)).catch(() => undefined);
        if (!file) continue;
        if (!(await stat(file).then((s) => s.isFile() && s.size > 0, () => false))) continue;
        const tail = (await tailFile({ file, lines })).map((l) => l.replace(ANSI, "")).filter((l) => l.trim() !== "");
        return c.json<RunLogResponse>({ file: name, lines: tail });
      }
      return c.json<RunLogResponse>({ file: null, lines: [] });
    })
    .get("/:id/events", async (c) => {
      const id = c.req.param("id");
      const run = await getRun(id);
      return followLog(c, ctx.pollMs, run.runDir, undefined, async () => {
        const state = (await runs().get(id)).state;
        return { state, finished: FINAL_STATES.has(state) };
      });
    })
    // Validation of a run from the page: one at a time, in the background, its events in the
    // run folder so the page can follow (and re-follow) it like the run itself.
    .post("/:id/validate", async (c) => {
      if (!params.validation) throw notSupported("Validation");
      const id = c.req.param("id");
      const run = await getRun(id);
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
    })
    .get("/:id/validate/events", async (c) => {
      const id = c.req.param("id");
      const run = await getRun(id);
      return followLog(c, ctx.pollMs, run.runDir, VALIDATION_EVENTS_FILE, async () => {
        const active = validating.has(id);
        return { state: active ? "running" : "finished", finished: !active };
      });
    });
}

/**
 * A live event log as SSE: replay from the byte offset the client has (Last-Event-ID), then
 * follow the file until `status()` says nothing more will be written.
 */
function followLog(c: Context, pollMs: number, runDir: string, name: string | undefined, status: () => Promise<{ state: string; finished: boolean }>) {
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
}
