import { readFile } from "node:fs/promises";

/** The loss events of a run's events.jsonl (lines that are not loss events are skipped). */
export async function readLossCurve(file: string): Promise<{ step: number; loss: number }[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return [];
  }
  const out: { step: number; loss: number }[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const raw = JSON.parse(line) as Record<string, unknown>;
      // A run may store bare events or wrap them ({time, event}); accept both.
      const e = (raw.type === undefined && typeof raw.event === "object" && raw.event !== null ? raw.event : raw) as Record<string, unknown>;
      if (e.type === "loss" && typeof e.step === "number" && typeof e.loss === "number" && Number.isFinite(e.loss)) out.push({ step: e.step, loss: e.loss });
    } catch {
      // A torn last line of a live run is not an error.
    }
  }
  return out;
}
