import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { SampleWatch } from "@loraspec/core/trainers/sample-files.js";
import { parseEvent } from "@loraspec/core/events.js";
import { LoraspecError } from "@loraspec/core/errors.js";
import { parseAiToolkitLine, type AiToolkitParseState } from "@loraspec/core/parse/parse-ai-toolkit-line.js";
import { parseKohyaLine, type KohyaParseState } from "@loraspec/core/parse/parse-kohya-line.js";
import type { LineParser } from "./supervise-process.js";

/**
 * What a run executes, as data: written to the run folder as job.json so that
 * `loraspec train --resume <id>` (or a restarted loraspec) can run it again without the contract.
 */
export type TrainJob = ProcessJob | FalJob;

export type OutputParser = "worker-jsonl" | "kohya" | "ai-toolkit";

export type ResumeStrategy =
  /** sd-scripts: `--resume <newest *-state dir>` (trainers.md §2.10). */
  | { kind: "kohya-state"; outputDir: string; outputName: string }
  /** ai-toolkit: re-run the same job folder; it loads the newest checkpoint itself (trainers.md §3.7). */
  | { kind: "automatic" }
  /** The built-in worker: the same request with resume_from "latest". */
  | { kind: "worker-request"; requestFile: string }
  | { kind: "none" };

export interface ProcessJob {
  kind: "process";
  trainer: string;
  command: string;
  args: string[];
  cwd: string;
  /** Extra environment for the trainer (never secrets: job.json is a plain file). */
  env?: Record<string, string>;
  /** Compiled files written into the run folder before the start (name -> content). */
  files?: Record<string, string>;
  parser: OutputParser;
  /** The final LoRA the trainer writes; success means this file exists and is a valid LoRA. */
  output: string;
  resume: ResumeStrategy;
  totalSteps?: number;
  /** limits.max_walltime_hours: the trainer is stopped (and the run failed) past this. */
  maxWalltimeHours?: number;
  /** hyperparameters.precision: the advice for a NaN loss depends on it. */
  precision?: string;
  /** output.format: the key format the run's LoRA is converted to (absent: the trainer's own). */
  outputFormat?: "diffusers" | "kohya" | "comfy";
  /** What the compiler could not honour exactly (shown as warnings when the run starts). */
  warnings?: { code: string; message: string }[];
  /** Kohya / ai-toolkit: the folder their own sample images appear in, turned into `sample` events (run/trainer-sample-watch.ts). */
  samples?: SampleWatch;
}

export interface FalJob {
  kind: "fal";
  trainer: "fal";
  endpoint: string;
  input: Record<string, unknown>;
  archive?: { path: string; field: string };
  cost?: { estimateUsd?: number; maxCostUsd?: number };
  totalSteps?: number;
  /** output.format (as ProcessJob's). */
  outputFormat?: "diffusers" | "kohya" | "comfy";
}

/** Overrides for the external trainers' text parsers (default: the core's, packages/core/src/parse). */
export type TextParsers = Partial<Record<"kohya" | "ai-toolkit", LineParser>>;

/**
 * A line parser for a job's output. The worker speaks JSON lines on stdout (its stderr is for
 * people); sd-scripts and ai-toolkit print text that the core's parsers read.
 */
export function parserFor(kind: OutputParser, textParsers: TextParsers = {}): LineParser {
  if (kind === "worker-jsonl") {
    return (line, stream) => {
      if (stream !== "stdout") return [];
      const trimmed = line.trim();
      if (!trimmed.startsWith("{")) return [{ type: "log", level: "debug", message: trimmed }];
      try {
        const event = parseEvent(JSON.parse(trimmed));
        return event ? [event] : [];
      } catch {
        return [{ type: "log", level: "debug", message: trimmed }];
      }
    };
  }
  const override = textParsers[kind];
  if (override) return override;
  // The core's parsers keep state across the lines of one run (tqdm draws each step twice).
  if (kind === "kohya") {
    const state: KohyaParseState = {};
    return (line) => parseKohyaLine(line, state);
  }
  if (kind === "ai-toolkit") {
    const state: AiToolkitParseState = {};
    return (line) => parseAiToolkitLine(line, state);
  }
  throw new LoraspecError("E_INTERNAL", `no parser for ${String(kind)}`);
}

export type { LoraspecEvent };
