import type { Sourced } from "@loraspec/core/knowledge/types.js";

/** The most bytes loraspec reads of one kind of small file it parses whole. */
export interface FileLimit extends Sourced {
  /** What the file is, for messages ("contract"). */
  what: string;
  bytes: number;
}

/**
 * Size limits on the small files loraspec parses whole. A project folder may hold anything (a
 * downloaded dataset, a LoRA's folder, a copied project): a multi-GB file where a contract or a
 * caption should be is refused after a stat, unread, instead of costing the process its memory.
 * Each limit is far above any real file of its kind. Change a record here, not a number in code.
 */
export const FILE_LIMITS = {
  /** lora.yaml. */
  contract: {
    what: "contract",
    bytes: 1024 * 1024,
    source:
      "ours: a real contract is a few KB (examples/*/lora.yaml: 1-3 KB); 1 MiB is also the JSON body the web page's save may send (server/limits.ts SERVER_LIMITS.jsonBytes)",
    asOf: "2026-12",
  },
  /** A caption sidecar (`image.txt`). */
  caption: {
    what: "caption",
    bytes: 64 * 1024,
    source:
      "ours: a caption is a sentence or a tag list (examples/character/dataset: under 200 bytes); the text encoders read at most 77-512 tokens (CLIP 77, T5 512), a few KB of text",
    asOf: "2026-12",
  },
  /** A diffusers model folder's model_index.json or config.json (a downloaded base model). */
  modelConfig: {
    what: "model config",
    bytes: 1024 * 1024,
    source: "ours: diffusers' model_index.json and a transformer's or UNet's config.json are 1-3 KB",
    asOf: "2026-12",
  },
  /**
   * A run folder's own small files, parsed whole: job.json, job.original.json, plan.json,
   * worker-request.json, attempt.json, fal-submission.json, supervisor.pid. A run folder may come
   * from a copied project, so these are as untrusted as a contract.
   */
  runMetadata: {
    what: "run file",
    bytes: 16 * 1024 * 1024,
    source:
      "ours: job.json holds the compiled trainer files inline (a worker request or kohya's TOMLs: 2-20 KB); plan.json and worker-request.json are a few KB; attempt.json, fal-submission.json and supervisor.pid under 1 KB",
    asOf: "2026-12",
  },
  /**
   * One line of an event log (events.jsonl, validation-events.jsonl, attempts.jsonl). The log itself
   * grows with a long run and is read line by line (fs/read-lines.ts); a line longer than this is
   * skipped, as a malformed line is, so one giant line cannot cost the process its memory.
   */
  eventLine: {
    what: "event line",
    bytes: 1024 * 1024,
    source:
      "ours: the longest events are the worker's settings event (every training setting and the bucket list: 1-5 KB) and an error carrying the trainer's message (a few KB); core events.ts LoraspecEventSchema",
    asOf: "2026-12",
  },
  /**
   * One image of a dataset, read whole to be probed, decoded and hashed (check, prep, caption). The
   * pixel limit (dataset/prep-knowledge.ts MAX_INPUT_PIXELS) is read from the header, so the file
   * must be in memory first: a file over this is left out unread (`image-too-large`), never read.
   */
  image: {
    what: "training image",
    bytes: 512 * 1024 * 1024,
    source:
      "ours: a 100-megapixel photo (Fujifilm GFX100, Hasselblad H6D-100c) is 20-60 MB as JPEG and at most 300 MB as 8-bit RGB PNG or TIFF (100e6 px x 3 bytes, uncompressed); 512 MiB keeps every such file and an uncompressed 8-bit RGB TIFF up to ~170 MP, and bounds what prep holds at once (one file per worker). Training resizes to about 1 MP, so a bigger file (a 16-bit uncompressed scan) is better re-exported as 8-bit or JPEG",
    asOf: "2026-12",
  },
} as const satisfies Record<string, FileLimit>;
