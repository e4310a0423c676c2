/**
 * The one typed event stream every long step yields. The CLI renders it, the server forwards it
 * over SSE, runs keep it as events.jsonl, tests assert on it, and the Python worker writes the
 * same shapes as JSON lines.
 */
export type LoraspecEvent =
  | { type: "phase"; name: string; message?: string }
  | {
      type: "progress";
      /** Which bar this belongs to: "train", "prep", "caption", "sample", ... */
      task: string;
      current: number;
      total: number;
      /** Items (steps, images) per second, when known. */
      rate?: number;
      /** Seconds left, when known. */
      eta?: number;
      message?: string;
    }
  | { type: "loss"; step: number; loss: number; lr?: number; avgLoss?: number }
  | { type: "sample"; step?: number; path: string; prompt?: string; seed?: number }
  | { type: "checkpoint"; step: number; path: string }
  | { type: "warning"; code?: string; message: string; file?: string }
  | { type: "error"; code: string; message: string; hint?: string; retryable?: boolean }
  | { type: "log"; level: "debug" | "info"; message: string }
  | { type: "done"; result?: Record<string, unknown> };

export type LoraspecEventType = LoraspecEvent["type"];

export type EventOf<T extends LoraspecEventType> = Extract<LoraspecEvent, { type: T }>;

const EVENT_TYPES: ReadonlySet<string> = new Set([
  "phase",
  "progress",
  "loss",
  "sample",
  "checkpoint",
  "warning",
  "error",
  "log",
  "done",
]);

/** Checks the shape of an event that came from outside (the worker, a file). */
export function parseEvent(value: unknown): LoraspecEvent | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const type = (value as { type?: unknown }).type;
  if (typeof type !== "string" || !EVENT_TYPES.has(type)) return undefined;
  return value as LoraspecEvent;
}

/** Collects an async event stream into an array (tests, --json output). */
export async function collectEvents<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const event of stream) out.push(event);
  return out;
}
