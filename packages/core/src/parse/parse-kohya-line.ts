import type { LoraspecEvent } from "../events.js";
import { parseLogNumber, parseTqdmLine, stripAnsi } from "./tqdm.js";

/**
 * What the kohya parser remembers between lines. Pass the same object for every line of one run:
 * tqdm draws each step twice (once on update() with the previous step's postfix, once on
 * set_postfix() with the new one), and only the second is that step's loss.
 */
export interface KohyaParseState {
  step?: number;
  total?: number;
  lastPostfix?: string;
  lastBarStep?: number;
  lastLossStep?: number;
  nanReported?: boolean;
  phase?: string;
}

const OOM = /CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED/;
const AVR_LOSS = /(?:^|[,\s])avr_loss=([^,\s\]]+)/;
const SAVING = /saving checkpoint:\s*(\S+\.safetensors)/;
const EPOCH = /^\s*epoch (\d+)\/(\d+)\s*$/;
const TOTAL_STEPS = /total optimization steps[^:]*:\s*(\d+)/;
const STEP_IN_NAME = /-step(\d{8})\.safetensors$/;

/**
 * Turns one line of sd-scripts output (stdout or stderr, already split on \r and \n) into events
 * (trainers.md §2.6; recorded runs in packages/core/test/parse/fixtures/). Lines it does not know
 * give no events.
 */
export function parseKohyaLine(rawLine: string, state: KohyaParseState = {}): LoraspecEvent[] {
  const line = stripAnsi(rawLine);
  const bar = parseTqdmLine(line);
  if (bar) return barEvents(bar, state);

  const saving = SAVING.exec(line);
  if (saving?.[1]) {
    const path = saving[1];
    const named = STEP_IN_NAME.exec(path);
    const step = named?.[1] ? Number(named[1]) : (state.step ?? state.total ?? 0);
    return [{ type: "checkpoint", step, path }];
  }
  const epoch = EPOCH.exec(line);
  if (epoch) return [{ type: "progress", task: "epoch", current: Number(epoch[1]), total: Number(epoch[2]) }];

  if (OOM.test(line)) {
    return [
      {
        type: "error",
        code: "E_OUT_OF_MEMORY",
        message: line.trim().slice(0, 300),
        hint: "Lower batch size or resolution, use base.quantize: fp8, enable gradient checkpointing, or (FLUX) swap blocks to the CPU.",
        retryable: true,
      },
    ];
  }
  if (/NaN detected in latents/.test(line)) {
    return [{ type: "error", code: "E_IMAGE_UNREADABLE", message: line.trim(), hint: "Remove or re-encode that image and prepare the dataset again." }];
  }
  if (/NaN found in latents, replacing with zeros/.test(line)) {
    return [{ type: "warning", code: "KOHYA_NAN_LATENTS", message: "sd-scripts found NaN in latents and replaced them with zeros (an image or the VAE in fp16 is at fault)." }];
  }
  if (/error: unrecognized arguments:/.test(line)) {
    return [{ type: "error", code: "E_TRAINER_FAILED", message: line.trim(), hint: "The args do not match the installed sd-scripts version: run `loraspec setup kohya` again." }];
  }
  const total = TOTAL_STEPS.exec(line);
  if (total?.[1]) {
    state.total = Number(total[1]);
    return [{ type: "progress", task: "train", current: state.step ?? 0, total: state.total }];
  }
  if (/running training \//.test(line)) return phase(state, "train", "training");
  if (/caching latents\.\.\./.test(line)) return phase(state, "cache-latents", "caching latents");
  if (/caching Text Encoder outputs\.\.\./.test(line)) return phase(state, "cache-text-encoder", "caching text-encoder outputs");
  if (/model saved\./.test(line)) return [{ type: "log", level: "info", message: "sd-scripts: model saved" }];
  return [];
}

function phase(state: KohyaParseState, name: string, message: string): LoraspecEvent[] {
  if (state.phase === name) return [];
  state.phase = name;
  return [{ type: "phase", name, message }];
}

function barEvents(bar: NonNullable<ReturnType<typeof parseTqdmLine>>, state: KohyaParseState): LoraspecEvent[] {
  if (bar.desc !== "steps") {
    // Caching, caption reading and validation bars: progress of the current phase.
    const task = bar.desc === "" ? (state.phase ?? "prep") : bar.desc.replace(/\W+/g, "-").toLowerCase();
    return [{ type: "progress", task, current: bar.current, total: bar.total, rate: bar.rate, eta: bar.etaSeconds }];
  }
  const events: LoraspecEvent[] = [
    { type: "progress", task: "train", current: bar.current, total: bar.total, rate: bar.rate, eta: bar.etaSeconds },
  ];
  const loss = AVR_LOSS.exec(bar.postfix);
  const sameStepRedraw = state.lastBarStep === bar.current;
  const postfixChanged = state.lastPostfix !== bar.postfix;
  state.lastBarStep = bar.current;
  state.step = bar.current;
  state.total = bar.total;
  // The update() draw repeats the previous step's loss (new step, same postfix: skipped); the
  // set_postfix() draw carries this step's. One loss per step: the closing redraw is skipped too.
  if (loss?.[1] && bar.current > 0 && state.lastLossStep !== bar.current && (sameStepRedraw || postfixChanged)) {
    state.lastLossStep = bar.current;
    const value = parseLogNumber(loss[1]);
    events.push({ type: "loss", step: bar.current, loss: value, avgLoss: value });
    if (!Number.isFinite(value) && !state.nanReported) {
      state.nanReported = true;
      events.push({
        type: "warning",
        code: "LOSS_NOT_FINITE",
        message: `kohya reports avr_loss=${loss[1]} at step ${bar.current}; sd-scripts does not stop on a NaN loss and will save a broken LoRA.`,
      });
    }
  }
  state.lastPostfix = bar.postfix;
  return events;
}
