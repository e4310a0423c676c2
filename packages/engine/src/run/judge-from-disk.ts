import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ErrorCode } from "@loraspec/core/errors.js";
import { ioError } from "./io-errors.js";
import { readRunJsonSync } from "./run-files.js";

/**
 * What a run's folder says about how its last attempt ended, read without the process that
 * watched it: the built-in worker's own final JSON line (`done` or `error` in stdout.log since the
 * attempt began), and for every trainer the LoRA file it was to write, checked by its header.
 * `loraspec runs` and every start reconcile with this, so a run that finished after its
 * supervisor died is `succeeded` with its output and final step (DESIGN.md "State").
 */
export type DiskVerdict =
  | { state: "succeeded"; outputPath: string; step?: number; how: string }
  | { state: "failed"; errorCode: string; errorMessage: string; how: string };

/** Where the current attempt began in the trainer's files (written before the trainer starts). */
export interface AttemptMark {
  attempt: number;
  startedAt: string;
  /** stdout.log's size when the attempt began: older lines belong to earlier attempts. */
  stdoutOffset: number;
}

export const ATTEMPT_FILE = "attempt.json";

/**
 * Reads the run folder; undefined when nothing on disk says the attempt ended. A job.json or
 * attempt.json too large to be one throws E_FILE_TOO_LARGE naming it (read-small-file.ts), unread.
 */
export function judgeFromDisk(runDir: string): DiskVerdict | undefined {
  const job = readRunJsonSync(join(runDir, "job.json")) as { kind?: string; parser?: string; output?: string; totalSteps?: number } | undefined;
  if (!job || job.kind !== "process") return undefined;
  const mark = readRunJsonSync(join(runDir, ATTEMPT_FILE)) as AttemptMark | undefined;
  if (job.parser === "worker-jsonl") {
    const last = lastFinalLine(join(runDir, "stdout.log"), mark?.stdoutOffset ?? 0);
    if (last?.type === "done") {
      const result = (last.result ?? {}) as { path?: unknown; steps?: unknown };
      const output = typeof result.path === "string" ? result.path : job.output;
      if (!output) return undefined;
      const bad = loraHeaderProblem(output);
      if (bad) return { state: "failed", errorCode: "E_NO_OUTPUT", errorMessage: `${output}: ${bad}`, how: "the trainer's done line" };
      return { state: "succeeded", outputPath: output, step: typeof result.steps === "number" ? result.steps : job.totalSteps, how: "the trainer's done line and the LoRA header" };
    }
    if (last?.type === "error" && typeof last.code === "string" && last.code !== "E_CANCELLED") {
      const message = String(last.message ?? "the trainer failed");
      // The worker reports a full disk as a Python OSError (errno 28): name it for what it is.
      const io = ioError({ message });
      return { state: "failed", errorCode: io?.code ?? (last.code as ErrorCode), errorMessage: io ? `${io.message}: ${message}` : message, how: "the trainer's error line" };
    }
    return undefined;
  }
  // sd-scripts / ai-toolkit print no final line we can trust; their final LoRA is written last.
  if (!job.output) return undefined;
  let written: number;
  try {
    written = statSync(job.output).mtimeMs;
  } catch {
    return undefined;
  }
  // A LoRA older than this attempt is an earlier attempt's (or the user's) file, not this one's.
  if (mark && written < Date.parse(mark.startedAt)) return undefined;
  if (loraHeaderProblem(job.output)) return undefined;
  return { state: "succeeded", outputPath: job.output, step: job.totalSteps, how: "the LoRA file and its header" };
}

/** The last `done`/`error` JSON event line after `offset` (the worker prints exactly one at its end). */
function lastFinalLine(path: string, offset: number): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFrom(path, offset);
  } catch {
    return undefined;
  }
  const lines = text.split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (!line.startsWith("{")) continue;
    try {
      const event = JSON.parse(line) as Record<string, unknown>;
      if (event.type === "done" || event.type === "error") return event;
    } catch {
      // a torn last line (the trainer died mid-write): keep looking
    }
  }
  return undefined;
}

/** The tail of a file from `offset`, at most the last 1 MiB (the final line is near the end). */
function readFrom(path: string, offset: number): string {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(offset, size - 1_048_576);
    if (start >= size) return "";
    const buffer = Buffer.alloc(size - start);
    readSync(fd, buffer, 0, buffer.length, start);
    return buffer.toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/**
 * The header check of a LoRA file, synchronous so that reconciliation stays one quick pass:
 * the length prefix, a JSON header, tensors inside the file, LoRA keys. Undefined when it passes.
 */
export function loraHeaderProblem(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return "the LoRA file does not exist";
  }
  try {
    const size = fstatSync(fd).size;
    if (size < 8) return `the file is ${size} bytes, too short for a safetensors header`;
    const prefix = Buffer.alloc(8);
    readSync(fd, prefix, 0, 8, 0);
    const length = Number(prefix.readBigUInt64LE(0));
    if (length <= 0 || length > 100_000_000 || 8 + length > size) return `the header length ${length} does not fit the file (${size} bytes)`;
    const bytes = Buffer.alloc(length);
    readSync(fd, bytes, 0, length, 8);
    let header: Record<string, { data_offsets?: unknown }>;
    try {
      header = JSON.parse(bytes.toString("utf8")) as typeof header;
    } catch {
      return "the header is not JSON (a truncated or corrupt file)";
    }
    const dataSize = size - 8 - length;
    let lora = 0;
    for (const [name, info] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      const offsets = info.data_offsets;
      if (!Array.isArray(offsets) || offsets.length !== 2 || !(offsets[1] <= dataSize)) return `tensor "${name}" lies outside the file`;
      if (/lora|\.alpha$|lokr|hada/i.test(name)) lora++;
    }
    return lora === 0 ? "the file holds no LoRA tensors" : undefined;
  } finally {
    closeSync(fd);
  }
}

