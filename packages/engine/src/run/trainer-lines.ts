import { open, type FileHandle } from "node:fs/promises";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { LineParser, OutputStream } from "./supervise-process.js";
import { SUPERVISION_POLICY, nanHint } from "./supervision-policy.js";

/**
 * What the supervisor learns from the trainer's lines: the last ones kept, the errors it reported,
 * the last loss, and the divergence (a run of non-finite losses), which calls `onDiverged` once.
 */
export class TrainerLines {
  readonly lastLines: string[] = [];
  readonly reported: LoraspecEvent[] = [];
  lastLoss: { step: number; loss: number } | undefined;
  divergedError: LoraspecError | undefined;
  private nonFinite = 0;
  private readonly keep = SUPERVISION_POLICY.lastLinesKept.value;

  constructor(
    private readonly params: { parseLine: LineParser; onLine?: (line: string, stream: OutputStream) => void; nanLimit: number; precision?: string },
    private readonly onDiverged: () => void,
  ) {}

  /** One line of output as events: the parser's, plus an E_TRAIN_DIVERGED error the first time the losses diverge. */
  handle(line: string, stream: OutputStream): LoraspecEvent[] {
    if (line.trim() === "") return [];
    this.lastLines.push(line);
    if (this.lastLines.length > this.keep) this.lastLines.shift();
    this.params.onLine?.(line, stream);
    const events = this.params.parseLine(line, stream);
    const out: LoraspecEvent[] = [];
    for (const event of events) {
      out.push(event);
      if (event.type === "error") this.reported.push(event);
      if (event.type !== "loss") continue;
      this.nonFinite = Number.isFinite(event.loss) ? 0 : this.nonFinite + 1;
      this.lastLoss = { step: event.step, loss: event.loss ?? Number.NaN };
      if (this.nonFinite >= this.params.nanLimit && !this.divergedError) {
        this.divergedError = new LoraspecError(
          "E_TRAIN_DIVERGED",
          `the loss was not finite for ${this.nonFinite} steps in a row (step ${event.step}); loraspec stopped the trainer so it cannot save a broken LoRA`,
          { hint: nanHint(this.params.precision), details: { step: event.step } },
        );
        const diverged = this.divergedError;
        out.push({ type: "error", code: diverged.code, message: diverged.message, hint: diverged.hint, retryable: false });
        this.onDiverged();
      }
    }
    return out;
  }
}

export interface Tail {
  read(final: boolean): Promise<string[]>;
  close(): Promise<void>;
}

/** Reads what was appended to a file since the last call, split into lines on \r and \n. */
export async function openTail(path: string): Promise<Tail> {
  const handle: FileHandle = await open(path, "r");
  // Start at the current end: on a resume the file already holds the earlier attempt's output.
  let offset = (await handle.stat()).size;
  const decoder = new TextDecoder();
  let partial = "";
  const buffer = Buffer.alloc(64 * 1024);
  return {
    async read(final) {
      let text = "";
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        text += decoder.decode(buffer.subarray(0, bytesRead), { stream: true });
      }
      if (final) text += decoder.decode();
      const parts = (partial + text).split(/\r\n|\r|\n/);
      partial = parts.pop() ?? "";
      if (final && partial !== "") {
        parts.push(partial);
        partial = "";
      }
      return parts;
    },
    close: () => handle.close(),
  };
}
