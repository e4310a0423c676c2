import { readFile } from "node:fs/promises";
import { dirname, extname, relative, sep } from "node:path";
import { trainingSamples, type TrainingSample } from "../run/training-samples.js";

const MIME: Record<string, string> = { ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp" };

/**
 * The run's samples during training for the validation report: links relative to the report's
 * folder (the report opens from disk), or data URIs with `inline` (one file to share; a sample
 * file that has gone is left out).
 */
export async function reportTrainingSamples(eventsFile: string, reportDir: string, inline: boolean): Promise<{ samples: TrainingSample[]; src: (s: TrainingSample) => string }> {
  const found = await trainingSamples({ runDir: dirname(eventsFile), eventsFile });
  if (!inline) return { samples: found, src: (s) => relative(reportDir, s.file).split(sep).join("/") };
  const data = new Map<string, string>();
  for (const s of found) {
    const bytes = await readFile(s.file).catch(() => undefined);
    if (bytes) data.set(s.file, `data:${MIME[extname(s.file).toLowerCase()] ?? "image/png"};base64,${bytes.toString("base64")}`);
  }
  return { samples: found.filter((s) => data.has(s.file)), src: (s) => data.get(s.file) ?? "" };
}
