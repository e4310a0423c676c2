import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { sampleEventOf, type SampleWatch } from "@loraspec/core/trainers/sample-files.js";
import { SUPERVISION_POLICY } from "./supervision-policy.js";

/** Something the supervisor polls beside the trainer's output for more events (a folder watch). */
export interface EventSource {
  /** New events since the last call; `final` once the trainer has exited (nothing is awaited any more). */
  poll(final: boolean): Promise<LoraspecEvent[]>;
}

/**
 * Watches the folder a trainer writes its own sample images into (Kohya, ai-toolkit) and turns each
 * new image into the `sample` event the built-in trainer emits (core's trainers/sample-files.ts reads
 * the name). Files there before the start (an earlier attempt's, already reported) are skipped. A
 * file is reported once its size stayed the same across two polls (sd-scripts writes it in place),
 * or when the trainer has exited (an empty file never counts). Names the trainer would not write, indexes past the run's prompts,
 * links and folders are ignored; past `maxEntries` names the watch stops, with one warning.
 */
export async function watchTrainerSamples(watch: SampleWatch, maxEntries = SUPERVISION_POLICY.sampleFolderMaxEntries.value): Promise<EventSource> {
  const done = new Set<string>(await list(watch.dir));
  const sizes = new Map<string, number>();
  let stopped = false;
  return {
    async poll(final) {
      if (stopped) return [];
      const out: LoraspecEvent[] = [];
      for (const name of await list(watch.dir)) {
        if (done.has(name)) continue;
        if (done.size + sizes.size >= maxEntries) {
          stopped = true;
          out.push({ type: "warning", code: "SAMPLE_FOLDER_TOO_LARGE", message: `${watch.dir} holds more than ${maxEntries} files; loraspec stopped reporting the trainer's sample images` });
          break;
        }
        const path = join(watch.dir, name);
        const event = sampleEventOf(watch, name, path);
        const stat = event ? await lstat(path).catch(() => undefined) : undefined;
        if (!event || (stat && !stat.isFile())) {
          done.add(name);
          continue;
        }
        if (!stat) continue;
        if (stat.size > 0 && (final || sizes.get(name) === stat.size)) {
          sizes.delete(name);
          done.add(name);
          out.push(event);
        } else sizes.set(name, stat.size);
      }
      // Several images of one step come out in the trainer's order.
      return out.sort((a, b) => (a.type === "sample" && b.type === "sample" ? (a.step ?? 0) - (b.step ?? 0) : 0));
    },
  };
}

/** The folder's names, sorted; none while it does not exist, or cannot be read (a sample folder never stops the supervision of a run). */
async function list(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}
