import { spawnSync } from "node:child_process";
import { appendFile, mkdir, mkdtemp, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FILE_LIMITS, type FileLimit } from "@loraspec/engine/fs/file-limits.js";
import { readLines, type ReadLine } from "@loraspec/engine/fs/read-lines.js";
import { openRunStore, type RunRecord } from "@loraspec/engine/run/run-store.js";
import { readSupervisorPid } from "@loraspec/engine/run/supervisor-pid.js";
import { followRunLog } from "@loraspec/engine/run/follow-run-log.js";
import { runDurationSeconds } from "@loraspec/engine/run/run-duration.js";
import { lossHistory, readAllEvents } from "@loraspec/engine/run/run-files.js";
import { resumeRun } from "@loraspec/engine/run/run-training.js";
import { createApp } from "@loraspec/engine/server/create-app.js";
import { createRunsService } from "@loraspec/engine/server/runs-service.js";
import { readLossCurve, type SkippedLine } from "@loraspec/engine/validate/read-loss-curve.js";

/**
 * A run folder may come from a copied project, so its files are as untrusted as a contract: the small
 * ones (job.json, plan.json, fal-submission.json, supervisor.pid) are read bounded and one too large
 * is E_FILE_TOO_LARGE naming it, never read; the event logs, which grow with a long run, are read line
 * by line and a line over FILE_LIMITS.eventLine is skipped, never held. Sparse files (truncate) cost
 * no disk; a reader that read one whole would need its size in memory.
 */
const GB3 = 3 * 1024 ** 3;
const root = fileURLToPath(new URL("../../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-runfiles-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function lines(file: string, limit: FileLimit): Promise<ReadLine[]> {
  const out: ReadLine[] = [];
  for await (const line of readLines({ file, limit })) out.push(line);
  return out;
}

/** A project with one run the store says is running, whose process is gone (so every listing reads its folder). */
async function projectWithRun(name: string): Promise<{ dir: string; run: RunRecord }> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  const store = openRunStore({ projectDir: dir });
  try {
    const created = store.create({ trainer: "diffusers", totalSteps: 10 });
    await mkdir(created.runDir, { recursive: true });
    store.transition(created.id, "starting");
    const run = store.transition(created.id, "running");
    return { dir, run };
  } finally {
    store.close();
  }
}

const tooLarge = (id: string, name: string) =>
  new RegExp(`^\\.loraspec/runs/${id}/${name.replace(".", "\\.")} is 3\\.0 GiB, more than a run file can be \\(at most 16\\.0 MiB\\); it was not read$`);

describe("readLines", () => {
  const small: FileLimit = { what: "line", bytes: 8, source: "test", asOf: "2026-12" };

  it("yields each line without its end (\\n or \\r\\n), a torn last line too, and a line over the limit as too-long, unbuilt", async () => {
    const file = join(tmp, "lines.txt");
    await writeFile(file, "one\r\n\ntwo\n0123456789abc\nthree\ntorn");
    expect(await lines(file, small)).toEqual([
      { kind: "line", text: "one", number: 1, end: 5 },
      { kind: "line", text: "", number: 2, end: 6 },
      { kind: "line", text: "two", number: 3, end: 10 },
      { kind: "too-long", bytes: 13, number: 4, end: 24 },
      { kind: "line", text: "three", number: 5, end: 30 },
      { kind: "line", text: "torn", number: 6, end: 34 },
    ]);
  });

  it("a line across read chunks (over 1 MiB) is whole; a folder or a pipe is refused, never read", async () => {
    const file = join(tmp, "long.txt");
    const long = "x".repeat(1024 * 1024 + 17);
    await writeFile(file, `a\n${long}\nb\n`);
    expect((await lines(file, { ...small, bytes: 2 * 1024 * 1024 })).map((l) => (l.kind === "line" ? l.text.length : -1))).toEqual([1, long.length, 1]);
    await expect(lines(tmp, small)).rejects.toMatchObject({ code: "EISDIR" });
    const fifo = join(tmp, "fifo");
    if (spawnSync("mkfifo", [fifo]).status === 0) await expect(lines(fifo, small)).rejects.toMatchObject({ code: "ENOTREG" });
  });
});

describe("events.jsonl of one 3 GB line", () => {
  let events: string;
  beforeAll(async () => {
    events = join(tmp, "events.jsonl");
    await writeFile(events, `${JSON.stringify({ type: "loss", step: 1, loss: 0.5 })}\n`);
    await truncate(events, GB3);
    await appendFile(events, `\n${JSON.stringify({ type: "loss", step: 2, loss: 0.4 })}\n`);
  });

  it("the loss curve skips the giant line (named to the caller) and keeps the lines around it, in bounded memory", async () => {
    const before = process.memoryUsage().rss;
    const skipped: SkippedLine[] = [];
    const curve = await readLossCurve(events, (s) => skipped.push(s));
    expect(curve).toEqual([
      { step: 1, loss: 0.5 },
      { step: 2, loss: 0.4 },
    ]);
    expect(skipped).toEqual([{ line: 2, bytes: GB3 - 36 }]);
    // Streamed: a chunk and a line of at most FILE_LIMITS.eventLine, not the 3 GB.
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 1024 ** 2);
  });
});

describe("the page's event reads (loss chart, samples, live events)", () => {
  it("skip a line over FILE_LIMITS.eventLine as they skip a malformed one, keeping the lines around it", async () => {
    const runDir = join(tmp, "sse");
    await mkdir(runDir, { recursive: true });
    const big = JSON.stringify({ type: "log", level: "info", message: "x".repeat(FILE_LIMITS.eventLine.bytes) });
    await writeFile(join(runDir, "events.jsonl"), [{ type: "loss", step: 1, loss: 0.5 }, big, { type: "loss", step: 2, loss: 0.4 }].map((e) => (typeof e === "string" ? e : JSON.stringify(e))).join("\n") + "\n");
    const events = await readAllEvents({ runDir });
    expect(events.map((e) => e.event.type)).toEqual(["loss", "loss"]);
    expect((await lossHistory({ runDir })).steps).toEqual([1, 2]);
  });
});

describe("loraspec logs", () => {
  it("writes a log larger than one read piece by piece, a character split between reads whole", async () => {
    const { dir, run } = await projectWithRun("logs");
    const text = `${"a".repeat(8 * 1024 * 1024 - 1)}é\nnext line\n`;
    await writeFile(join(run.runDir, "run.log"), text);
    const written: string[] = [];
    await followRunLog({ projectDir: dir, runId: run.id, write: (t) => written.push(t) });
    expect(written.length).toBeGreaterThan(1);
    expect(written.join("")).toBe(text);
  });

  // A read boundary anywhere (each chunk size from 1 byte to the whole log) writes what one read does:
  // a "\r\n" split between two reads is one line end, not a bar redraw and a blank line.
  it.each([
    ["CRLF lines", "step 1\r\nstep 2\r\n", "step 1\r\nstep 2\r\n"],
    ["bar redraws then CRLF", "10%\r50%\r\ndone\n", "10%\n50%\r\ndone\n"],
    ["a redraw that ends the log", "a\r\nb\r", "a\r\nb\n"],
    ["CRLF around a split character", "é\r\né\r\r\n", "é\r\né\n\r\n"],
  ])("%s: the same output for every read size", async (_name, text, want) => {
    const { dir, run } = await projectWithRun(`crlf-${_name.replace(/\W/g, "")}`);
    await writeFile(join(run.runDir, "run.log"), text);
    for (let chunkBytes = 1; chunkBytes <= Buffer.byteLength(text); chunkBytes++) {
      const written: string[] = [];
      await followRunLog({ projectDir: dir, runId: run.id, write: (t) => written.push(t), chunkBytes });
      expect(written.join(""), `read size ${chunkBytes}`).toBe(want);
    }
  });

  it("a CRLF across the real 8 MiB read boundary is one line end", async () => {
    const { dir, run } = await projectWithRun("crlf-8mib");
    const text = `${"a".repeat(8 * 1024 * 1024 - 1)}\r\nnext line\r\n`;
    await writeFile(join(run.runDir, "run.log"), text);
    const written: string[] = [];
    await followRunLog({ projectDir: dir, runId: run.id, write: (t) => written.push(t) });
    expect(written.join("")).toBe(text);
  });
});

describe("a run's duration from attempts.jsonl", () => {
  // Lines without two dates (a copied or hand-edited file) are skipped, never summed as NaN.
  const junk = [
    "{}",
    JSON.stringify({ attempt: 1 }),
    JSON.stringify({ startedAt: "2026-01-01T00:00:00Z" }),
    JSON.stringify({ startedAt: "yesterday", endedAt: "today" }),
    JSON.stringify({ startedAt: 0, endedAt: 10_000 }),
    JSON.stringify({ startedAt: null, endedAt: "2026-01-01T00:00:10Z" }),
    "null",
    "5",
    '"2026-01-01T00:00:00Z"',
    "{torn",
  ];
  const good = JSON.stringify({ startedAt: "2026-01-01T00:00:00Z", endedAt: "2026-01-01T00:00:10Z" });

  it.each(junk)("%s is skipped; the good attempt still counts", async (line) => {
    const { run } = await projectWithRun(`dur-${junk.indexOf(line)}`);
    await writeFile(join(run.runDir, "attempts.jsonl"), `${line}\n${good}\n`);
    const started = Date.parse(run.startedAt!);
    expect(await runDurationSeconds({ ...run, endedAt: new Date(started + 5000).toISOString() })).toBeCloseTo(15, 3);
  });

  it("a row whose own dates are not dates has no duration (undefined), not NaN", async () => {
    const { run } = await projectWithRun("dur-row");
    expect(await runDurationSeconds({ ...run, startedAt: "garbage" })).toBeUndefined();
    expect(await runDurationSeconds({ ...run, endedAt: "garbage" })).toBeUndefined();
  });

  it("`loraspec runs` prints a duration, never NaN, for a run whose attempts.jsonl has lines without dates", async () => {
    const { dir, run } = await projectWithRun("dur-cli");
    await writeFile(join(run.runDir, "attempts.jsonl"), `${junk.join("\n")}\n${good}\n`);
    const text = spawnSync(process.execPath, [bin, "runs", "--project", dir], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 60_000 });
    expect(text.status).toBe(0);
    expect(text.stdout).toContain(run.id);
    expect(text.stdout).not.toMatch(/NaN/);
    const json = spawnSync(process.execPath, [bin, "runs", "--json", "--project", dir], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 60_000 });
    expect(json.status).toBe(0);
    expect(json.stdout).not.toMatch(/NaN/);
    const listed = (JSON.parse(json.stdout) as { runs: Array<{ id: string; durationSeconds: number | null }> }).runs.find((r) => r.id === run.id);
    // The good attempt's 10 s plus this attempt's span (settled by reconcile as interrupted).
    expect(listed?.durationSeconds).toBeGreaterThanOrEqual(10);
    expect(Number.isFinite(listed?.durationSeconds)).toBe(true);
  });
});

describe("a multi-GB file in a run folder", () => {
  it("job.json: reconcile names it (E_FILE_TOO_LARGE), settles the run as if it said nothing, and reads nothing", async () => {
    const { dir, run } = await projectWithRun("job");
    await writeFile(join(run.runDir, "job.json"), "{");
    await truncate(join(run.runDir, "job.json"), GB3);
    const store = openRunStore({ projectDir: dir });
    try {
      const changed = store.reconcile();
      expect(changed.map((r) => [r.id, r.state])).toEqual([[run.id, "interrupted"]]);
      expect(store.problems).toEqual([{ id: run.id, code: "E_FILE_TOO_LARGE", file: `.loraspec/runs/${run.id}/job.json`, message: expect.stringMatching(tooLarge(run.id, "job.json")) }]);
      // Resuming needs the job: refused with the same coded error, nothing started.
      const resumed = await resumeRun({ projectDir: dir, store, runId: run.id }).next().catch((e: unknown) => e);
      expect(resumed).toMatchObject({ code: "E_FILE_TOO_LARGE", file: `.loraspec/runs/${run.id}/job.json` });
    } finally {
      store.close();
    }
    expect((await stat(join(run.runDir, "job.json"))).size).toBe(GB3);
  });

  it("supervisor.pid: named the same way; the page's own-run check reads it bounded", async () => {
    const { dir, run } = await projectWithRun("pid");
    await writeFile(join(run.runDir, "supervisor.pid"), "1 2\n");
    await truncate(join(run.runDir, "supervisor.pid"), GB3);
    expect(() => readSupervisorPid(run.runDir)).toThrow(expect.objectContaining({ code: "E_FILE_TOO_LARGE" }));
    const store = openRunStore({ projectDir: dir });
    try {
      store.reconcile();
      expect(store.problems).toEqual([expect.objectContaining({ id: run.id, code: "E_FILE_TOO_LARGE", file: `.loraspec/runs/${run.id}/supervisor.pid` })]);
    } finally {
      store.close();
    }
  });

  it("attempts.jsonl with a line over the event-line limit: the run's duration skips it", async () => {
    const { run } = await projectWithRun("attempts");
    await writeFile(join(run.runDir, "attempts.jsonl"), `${JSON.stringify({ startedAt: "2026-01-01T00:00:00Z", endedAt: "2026-01-01T00:00:10Z" })}\n`);
    await truncate(join(run.runDir, "attempts.jsonl"), 4 * FILE_LIMITS.eventLine.bytes);
    const started = Date.parse(run.startedAt!);
    expect(await runDurationSeconds({ ...run, endedAt: new Date(started + 5000).toISOString() })).toBeCloseTo(15, 3);
  });

  it("`loraspec runs` lists the run and warns naming the file, exit 0, no stack", async () => {
    const { dir, run } = await projectWithRun("cli");
    await writeFile(join(run.runDir, "job.json"), "{");
    await truncate(join(run.runDir, "job.json"), GB3);
    for (const args of [["runs"], ["runs", "--json"]]) {
      const r = spawnSync(process.execPath, [bin, ...args, "--project", dir], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, timeout: 60_000 });
      expect([args.join(" "), r.status]).toEqual([args.join(" "), 0]);
      expect(r.stderr).toContain(`warning [E_FILE_TOO_LARGE] run ${run.id}: .loraspec/runs/${run.id}/job.json is 3.0 GiB, more than a run file can be (at most 16.0 MiB); it was not read`);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stdout).toContain(run.id);
    }
  });

  it("GET /api/runs lists the run with the coded problem naming the file", async () => {
    const { dir, run } = await projectWithRun("web");
    await writeFile(join(run.runDir, "job.json"), "{");
    await truncate(join(run.runDir, "job.json"), GB3);
    const runs = createRunsService({ projectDir: dir });
    try {
      const app = createApp({ projectDir: dir, token: "runfiles-token-0123456789abcdef", runs });
      const res = await app.request("/api/runs", { headers: { Host: "127.0.0.1:4747", Authorization: "Bearer runfiles-token-0123456789abcdef" } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { runs: Array<{ id: string; state: string; problem?: { code: string; file?: string; message: string } }> };
      expect(body.runs).toEqual([
        expect.objectContaining({
          id: run.id,
          state: "interrupted",
          problem: { code: "E_FILE_TOO_LARGE", file: `.loraspec/runs/${run.id}/job.json`, message: expect.stringMatching(tooLarge(run.id, "job.json")) },
        }),
      ]);
    } finally {
      runs.close();
    }
  });
});

describe("every run-file limit says what it is for and where it comes from", () => {
  it.each([FILE_LIMITS.runMetadata, FILE_LIMITS.eventLine])("$what", (limit) => {
    expect(limit.source.length).toBeGreaterThan(20);
  });
});
