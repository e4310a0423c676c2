import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { parseEvent, type LoraspecEvent } from "@loraspec/core/events.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readSmallTextSync } from "../fs/read-small-file.js";

/** The run folder's event log (DESIGN.md: runs/<id>/events.jsonl, appended across resumes). */
export const EVENTS_FILE = "events.jsonl";

/** Reads whole events from `offset`; a trailing half-written line is left for the next read. */
/** The events of a validation started from the page, beside the run's own. */
export const VALIDATION_EVENTS_FILE = "validation-events.jsonl";

/** Bytes read per call: a hostile or runaway multi-GB log is read in pieces, never into one buffer. */
export const EVENTS_READ_CHUNK_BYTES = 8 * 1024 * 1024;

export async function readEventsFrom(params: {
  runDir: string;
  offset: number;
  /** Which log in the run folder (default: the run's events.jsonl). */
  name?: string;
  /** At most this many bytes from `offset` (default EVENTS_READ_CHUNK_BYTES); the returned offset says where to go on. */
  maxBytes?: number;
}): Promise<{ events: Array<{ event: LoraspecEvent; end: number }>; offset: number }> {
  const file = join(params.runDir, params.name ?? EVENTS_FILE);
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    return { events: [], offset: params.offset };
  }
  if (size <= params.offset) return { events: [], offset: size < params.offset ? 0 : params.offset };
  const handle = await open(file, "r");
  try {
    const length = Math.min(size - params.offset, params.maxBytes ?? EVENTS_READ_CHUNK_BYTES);
    const buf = Buffer.alloc(length);
    await handle.read(buf, 0, length, params.offset);
    const events: Array<{ event: LoraspecEvent; end: number }> = [];
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      // A line over FILE_LIMITS.eventLine is skipped unparsed, as read-lines.ts readers skip it.
      const long = nl - start > FILE_LIMITS.eventLine.bytes;
      const line = long ? "" : buf.subarray(start, nl).toString("utf8").trim();
      start = nl + 1;
      if (!line) continue;
      try {
        const event = parseEvent(JSON.parse(line));
        if (event) events.push({ event, end: params.offset + start });
      } catch {
        // A corrupt line (a crash mid-write) is skipped, not fatal.
      }
    }
    // A full chunk with no line end is one absurd line: skipped, or the reader would stall on it.
    if (start === 0 && length < size - params.offset) start = length;
    return { events, offset: params.offset + start };
  } finally {
    await handle.close();
  }
}

/** Every whole event of a log, read chunk by chunk (readEventsFrom's bound), never in one buffer. */
export async function readAllEvents(params: { runDir: string; name?: string; maxBytes?: number }): Promise<Array<{ event: LoraspecEvent; end: number }>> {
  const events: Array<{ event: LoraspecEvent; end: number }> = [];
  for (let offset = 0; ; ) {
    const read = await readEventsFrom({ runDir: params.runDir, offset, name: params.name, maxBytes: params.maxBytes });
    events.push(...read.events);
    if (read.offset <= offset) return events;
    offset = read.offset;
  }
}

/**
 * Loss history for the chart: one point per step, the latest attempt winning where a resume
 * replayed steps, so the curve keeps its history across resumes. `stride` thins long runs.
 */
export async function lossHistory(params: { runDir: string; sinceStep?: number; stride?: number }): Promise<{
  steps: number[];
  loss: number[];
  avgLoss: Array<number | null>;
}> {
  const events = await readAllEvents({ runDir: params.runDir });
  const byStep = new Map<number, { loss: number; avgLoss?: number }>();
  for (const { event } of events) {
    if (event.type === "loss" && Number.isFinite(event.step) && (params.sinceStep === undefined || event.step > params.sinceStep)) {
      byStep.set(event.step, { loss: event.loss ?? Number.NaN, avgLoss: event.avgLoss });
    }
  }
  const stride = Math.max(1, Math.floor(params.stride ?? 1));
  const sorted = [...byStep.entries()].sort((a, b) => a[0] - b[0]).filter((_, i, all) => i % stride === 0 || i === all.length - 1);
  return {
    steps: sorted.map(([s]) => s),
    loss: sorted.map(([, v]) => v.loss),
    avgLoss: sorted.map(([, v]) => v.avgLoss ?? null),
  };
}

/** The last `lines` lines of a text file (reads only the tail of big logs). */
export async function tailFile(params: { file: string; lines: number }): Promise<string[]> {
  let size: number;
  try {
    size = (await stat(params.file)).size;
  } catch {
    return [];
  }
  // Enough bytes for the requested lines of a typical log; tqdm lines are short.
  const want = Math.min(size, params.lines * 400);
  const handle = await open(params.file, "r");
  try {
    const buf = Buffer.alloc(want);
    await handle.read(buf, 0, want, size - want);
    const text = buf.toString("utf8");
    const all = text.split(/\r\n|\r|\n/);
    if (want < size) all.shift();
    while (all.length && all[all.length - 1] === "") all.pop();
    return all.slice(-params.lines);
  } finally {
    await handle.close();
  }
}

/** A run-folder file as the user knows it (`.loraspec/runs/<id>/job.json`), else the path as given. */
export function shownRunFile(file: string): string {
  const parts = file.split(/[\\/]+/);
  const at = parts.lastIndexOf(".loraspec");
  return at >= 0 && parts[at + 1] === "runs" && parts.length > at + 3 ? parts.slice(at).join("/") : file;
}

/**
 * A run folder's small file as text (supervisor.pid, and through readRunJsonSync job.json, plan.json,
 * attempt.json, fal-submission.json), read bounded: one over FILE_LIMITS.runMetadata is
 * E_FILE_TOO_LARGE naming it, never read. One that is missing or cannot be read (a folder, a pipe,
 * permissions) says nothing: undefined, as before the limit.
 */
export function readRunTextSync(file: string): string | undefined {
  try {
    return readSmallTextSync({ file, limit: FILE_LIMITS.runMetadata, shown: shownRunFile(file) });
  } catch (error) {
    if (isLoraspecError(error)) throw error;
    return undefined;
  }
}

/** readRunTextSync parsed as JSON; undefined when missing, unreadable or not JSON (a torn write). */
export function readRunJsonSync(file: string): unknown {
  const text = readRunTextSync(file);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
