import { FILE_LIMITS } from "../fs/file-limits.js";
import { readLines } from "../fs/read-lines.js";

/** A line of a run's event log skipped for its length (over FILE_LIMITS.eventLine), never parsed. */
export interface SkippedLine {
  line: number;
  bytes: number;
}

/**
 * The events of a run's events.jsonl as raw objects, read line by line (fs/read-lines.ts), so a
 * log that grew with a long run is never held whole. A run may store bare events or wrap them
 * ({time, event}): both are unwrapped. Torn or foreign lines are skipped; a line over
 * FILE_LIMITS.eventLine is skipped unparsed and reported to `onSkipped`. A missing log has no events.
 */
export async function* readRunEventObjects(file: string, onSkipped?: (skipped: SkippedLine) => void): AsyncGenerator<Record<string, unknown>> {
  try {
    for await (const line of readLines({ file, limit: FILE_LIMITS.eventLine })) {
      if (line.kind === "too-long") {
        onSkipped?.({ line: line.number, bytes: line.bytes });
        continue;
      }
      if (!line.text.trim()) continue;
      let raw: unknown;
      try {
        raw = JSON.parse(line.text);
      } catch {
        continue; // A torn last line of a live run is not an error.
      }
      if (typeof raw !== "object" || raw === null) continue;
      const r = raw as Record<string, unknown>;
      yield (r.type === undefined && typeof r.event === "object" && r.event !== null ? r.event : r) as Record<string, unknown>;
    }
  } catch {
    // No log (a run that never started), or one that cannot be read (a folder, a pipe): no events.
  }
}

/** The loss events of a run's events.jsonl (lines that are not loss events are skipped). */
export async function readLossCurve(file: string, onSkipped?: (skipped: SkippedLine) => void): Promise<{ step: number; loss: number }[]> {
  const out: { step: number; loss: number }[] = [];
  for await (const e of readRunEventObjects(file, onSkipped)) {
    if (e.type === "loss" && typeof e.step === "number" && typeof e.loss === "number" && Number.isFinite(e.loss)) out.push({ step: e.step, loss: e.loss });
  }
  return out;
}
