import type { LoraspecEvent } from "../events.js";
import { parseLogNumber, parseTqdmLine, stripAnsi } from "./tqdm.js";

/** What the ai-toolkit parser remembers between lines of one run. */
export interface AiToolkitParseState {
  /** `config.name` of the job: the training bar's description. */
  jobName?: string;
  step?: number;
  total?: number;
  lastLossStep?: number;
  lastPostfix?: string;
  nanReported?: boolean;
  phase?: string;
}

const OOM_SKIP = /# OOM during training step, skipping batch (\d+)\/(\d+)/;
const OOM = /CUDA out of memory|OutOfMemoryError/;
const SAVED = /Saved checkpoint to (\S+\.safetensors)/;
const STEP_IN_NAME = /_(\d{9})\.safetensors$/;
const PAIRS = /(\w+):\s*([-+\w.]+)/g;

/**
 * Turns one line of ai-toolkit's output (`python run.py job.yaml`, already split on \r and \n)
 * into events (trainers.md §3.4, §3.7; recorded runs in packages/core/test/parse/fixtures/).
 * The training bar's postfix is `lr: 1.0e-04 loss: 4.167e-01` (one `key: value` per loss term).
 */
export function parseAiToolkitLine(rawLine: string, state: AiToolkitParseState = {}): LoraspecEvent[] {
  // Nested tqdm bars move the cursor with ANSI escapes (`\x1b[A`) that can prefix the next message.
  const line = stripAnsi(rawLine);
  const bar = parseTqdmLine(line);
  if (bar) {
    const pairs = Object.fromEntries([...bar.postfix.matchAll(PAIRS)].map((m) => [m[1], m[2]]));
    const isTrain = (state.jobName !== undefined && bar.desc === state.jobName) || "loss" in pairs;
    if (!isTrain) {
      const task = /generating (samples|images)/i.test(bar.desc) ? "sample" : bar.desc.replace(/\W+/g, "-").toLowerCase() || (state.phase ?? "prep");
      return [{ type: "progress", task, current: bar.current, total: bar.total, rate: bar.rate, eta: bar.etaSeconds }];
    }
    state.jobName ??= bar.desc;
    state.step = bar.current;
    state.total = bar.total;
    const events: LoraspecEvent[] = [
      { type: "progress", task: "train", current: bar.current, total: bar.total, rate: bar.rate, eta: bar.etaSeconds },
    ];
    // At the pinned commit the postfix is set BEFORE the bar's update (recorded: `0/6 [..., loss:
    // 9.945e-01]` then `1/6 [..., loss: 9.945e-01]`), so a new postfix on a bar at n is step n+1's
    // loss; redraws that repeat the postfix add nothing.
    const step = Math.min(bar.current + 1, bar.total);
    if (pairs.loss !== undefined && bar.postfix !== state.lastPostfix && (state.lastLossStep === undefined || step > state.lastLossStep)) {
      state.lastLossStep = step;
      const loss = parseLogNumber(pairs.loss);
      const lr = pairs.lr === undefined ? undefined : parseLogNumber(pairs.lr);
      events.push({ type: "loss", step, loss, ...(lr === undefined ? {} : { lr }) });
    }
    state.lastPostfix = bar.postfix;
    return events;
  }

  const saved = SAVED.exec(line);
  if (saved?.[1]) {
    // Steps in events count optimizer updates. ai-toolkit labels a save with its 0-based step_num
    // after that step's update (recorded: `2/6 [..., loss: 1.060]`, `Saving at step 2`, then
    // `..._000000002.safetensors`), i.e. one less than the updates it holds.
    const named = STEP_IN_NAME.exec(saved[1]);
    const step = state.lastLossStep ?? (named?.[1] ? Number(named[1]) + 1 : (state.step ?? state.total ?? 0));
    return [{ type: "checkpoint", step, path: saved[1] }];
  }
  const skip = OOM_SKIP.exec(line);
  if (skip) {
    return [{ type: "warning", code: "OOM_SKIPPED_BATCH", message: `ai-toolkit ran out of memory and skipped a batch (${skip[1]}/${skip[2]} in a row before it aborts).` }];
  }
  if (/OOM during training step \d+ times in a row, aborting/.test(line)) {
    return [{ type: "error", code: "E_OUT_OF_MEMORY", message: line.trim(), hint: "Quantize the base (base.quantize), lower the resolution or batch size.", retryable: true }];
  }
  if (OOM.test(line)) {
    return [{ type: "error", code: "E_OUT_OF_MEMORY", message: line.trim().slice(0, 300), retryable: true }];
  }
  if (/^\s*loss is nan\s*$/i.test(line)) {
    if (state.nanReported) return [];
    state.nanReported = true;
    return [{ type: "warning", code: "LOSS_NOT_FINITE", message: `ai-toolkit reports a NaN loss${state.step === undefined ? "" : ` near step ${state.step}`}; it zeroes that loss and carries on.` }];
  }
  const errorRunning = /^Error running job: (.*)$/.exec(line.trim());
  if (errorRunning) return [{ type: "error", code: "E_TRAINER_FAILED", message: errorRunning[1] ?? line.trim() }];
  const resuming = /#+ IMPORTANT RESUMING FROM (.+?) #+/.exec(line);
  if (resuming) return [{ type: "log", level: "info", message: `ai-toolkit resumes from ${resuming[1]}` }];
  const found = /Found step (\d+) in metadata, starting from there/.exec(line);
  if (found) {
    state.step = Number(found[1]);
    return [{ type: "log", level: "info", message: `ai-toolkit continues at step ${found[1]}` }];
  }
  if (/Generating baseline samples before training/.test(line)) {
    state.phase = "sample";
    return [{ type: "phase", name: "sample-baseline", message: "baseline samples" }];
  }
  if (/^\s*-\s*1 completed job/.test(line)) return [{ type: "log", level: "info", message: "ai-toolkit: job completed" }];
  return [];
}
