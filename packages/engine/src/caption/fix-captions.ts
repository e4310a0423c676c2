import { join } from "node:path";
import { fixCaption, normalizeCaption, type CaptionStyle } from "@loraspec/core/captions/caption-rules.js";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { readCaptionFile } from "../dataset/caption-sidecar.js";
import { listDatasetFiles } from "../dataset/list-dataset-files.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { captionPathFor } from "./caption-dataset.js";

export interface FixCaptionsSummary {
  dir: string;
  fixed: string[];
  unchanged: number;
  /** Images with no caption at all (nothing to fix; `loraspec caption` fills them). */
  missing: string[];
  /** Captions left as they are because they could not be read as a caption: not UTF-8 (rewriting would destroy their accents) or too large (a warning each names which). */
  unreadable: string[];
}

/** `loraspec caption --fix`: puts the trigger first in every existing caption (atomic writes). */
export async function* fixCaptions(params: { dir: string; trigger: string; style: CaptionStyle; captionExtension?: string }): AsyncGenerator<LoraspecEvent, FixCaptionsSummary> {
  if (!params.trigger.trim()) throw new LoraspecError("E_USAGE", "no trigger word to put first", { field: "trigger.word" });
  const ext = params.captionExtension ?? ".txt";
  const files = await listDatasetFiles({ dir: params.dir, captionExtension: ext });
  const summary: FixCaptionsSummary = { dir: params.dir, fixed: [], unchanged: 0, missing: [], unreadable: [] };
  yield { type: "phase", name: "fix captions", message: `trigger "${params.trigger}" first` };
  let done = 0;
  for (const image of files.images) {
    // The caption the image pairs with (IMG_01.JPG + IMG_01.TXT), read as check and prep read it.
    const caption = files.sidecars.get(image) ?? captionPathFor(image, ext);
    const read = await readCaptionFile(join(params.dir, caption));
    const text = read?.text;
    if (read?.problem) {
      summary.unreadable.push(caption);
      yield { type: "warning", code: read.problem.code, message: `${caption}: ${read.problem.message} (not fixed)`, file: caption };
    } else if (text === undefined || !text.trim()) summary.missing.push(image);
    else {
      const fixed = fixCaption(text, params.trigger, params.style);
      if (fixed !== normalizeCaption(text)) {
        await atomicWrite(join(params.dir, caption), `${fixed}\n`);
        summary.fixed.push(caption);
      } else summary.unchanged++;
    }
    done++;
    yield { type: "progress", task: "fix", current: done, total: files.images.length };
  }
  yield { type: "done", result: { ...summary } };
  return summary;
}
