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
} as const satisfies Record<string, FileLimit>;
