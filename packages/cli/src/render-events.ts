import cliProgress from "cli-progress";
import pc from "picocolors";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { isInteractive } from "./output.js";

export interface RenderOptions {
  /** Print each event as a JSON line on stdout instead of bars. */
  json?: boolean;
}

/**
 * Renders one event stream: progress bars on a terminal, plain lines otherwise (CI, pipes),
 * JSON lines with --json. Returns the `done` event's result, if any.
 */
export async function renderEvents(
  stream: AsyncIterable<LoraspecEvent>,
  options: RenderOptions = {},
): Promise<Record<string, unknown> | undefined> {
  const interactive = !options.json && isInteractive();
  const bars = interactive
    ? new cliProgress.MultiBar(
        {
          format: "{task} {bar} {value}/{total} | {rate} | ETA {eta_h} | {message}",
          hideCursor: true,
          clearOnComplete: false,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const open = new Map<string, cliProgress.SingleBar>();
  const lastPlain = new Map<string, number>();
  let lastLoss: number | undefined;
  let result: Record<string, unknown> | undefined;
  const say = (line: string) => {
    if (bars) bars.log(`${line}\n`);
    else process.stderr.write(`${line}\n`);
  };
  try {
    for await (const event of stream) {
      if (options.json) {
        process.stdout.write(`${JSON.stringify(event)}\n`);
        if (event.type === "done") result = event.result;
        continue;
      }
      switch (event.type) {
        case "phase":
          say(pc.bold(`> ${event.name}`) + (event.message ? ` ${pc.dim(event.message)}` : ""));
          break;
        case "progress": {
          const payload = {
            task: event.task.padEnd(8),
            rate: event.rate === undefined ? "-" : `${event.rate.toFixed(2)}/s`,
            eta_h: event.eta === undefined ? "-" : formatSeconds(event.eta),
            message: event.message ?? (lastLoss === undefined ? "" : `loss ${lastLoss.toFixed(4)}`),
          };
          if (bars) {
            let bar = open.get(event.task);
            if (!bar) {
              bar = bars.create(event.total, event.current, payload);
              open.set(event.task, bar);
            }
            bar.setTotal(event.total);
            bar.update(event.current, payload);
          } else {
            // Plain mode: a line at most every 10% (and at the end) so logs stay readable.
            const decile = Math.floor((event.current / Math.max(event.total, 1)) * 10);
            if (lastPlain.get(event.task) !== decile || event.current === event.total) {
              lastPlain.set(event.task, decile);
              say(`${event.task} ${event.current}/${event.total} ${payload.rate} eta ${payload.eta_h} ${payload.message}`.trimEnd());
            }
          }
          break;
        }
        case "loss":
          lastLoss = event.loss ?? Number.NaN;
          break;
        case "checkpoint":
          say(`${pc.green("checkpoint")} step ${event.step}: ${event.path}`);
          break;
        case "sample":
          say(`${pc.cyan("sample")} ${event.path}`);
          break;
        case "warning":
          say(`${pc.yellow("warning")} ${event.message}`);
          break;
        case "error":
          say(`${pc.red("error")} [${event.code}] ${event.message}${event.hint ? `\n  fix: ${event.hint}` : ""}`);
          break;
        case "log":
          if (event.level === "info") say(pc.dim(event.message));
          break;
        case "done":
          result = event.result;
          break;
      }
    }
  } finally {
    bars?.stop();
  }
  return result;
}

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return "-";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(r).padStart(2, "0")}s` : `${r}s`;
}
