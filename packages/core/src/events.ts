import { z } from "zod";

/** A setting's value; `buckets` is a list of {resolution, width, height} (compile/worker-request.ts); null: a regulariser that is off (min_snr_gamma, ema_decay). */
const Setting = z.union([
  z.boolean(),
  z.number(),
  z.string(),
  z.array(z.string()),
  z.array(z.strictObject({ resolution: z.number(), width: z.number(), height: z.number() })),
  z.null(),
]);

/** The event union as a schema: exported as schema/loraspec-event.schema.json, which the worker's tests hold its events to. */
export const LoraspecEventSchema = z.discriminatedUnion("type", [
  /** at: seconds since the worker started (the built-in trainer's whole-run timing: train/timing.py). */
  z.strictObject({ type: z.literal("phase"), name: z.string(), message: z.string().optional(), at: z.number().nonnegative().optional() }),
  z.strictObject({
    type: z.literal("progress"),
    /** Which bar this belongs to: "train", "prep", "caption", "sample", ... */
    task: z.string(),
    current: z.number(),
    total: z.number(),
    /** Items (steps, images) per second, when known. */
    rate: z.number().optional(),
    /** Seconds left, when known. */
    eta: z.number().optional(),
    message: z.string().optional(),
  }),
  /** loss is null when it was not finite (the step that diverged). */
  z.strictObject({ type: z.literal("loss"), step: z.int(), loss: z.number().nullable(), lr: z.number().optional(), avgLoss: z.number().optional() }),
  z.strictObject({ type: z.literal("sample"), step: z.int().optional(), path: z.string(), prompt: z.string().optional(), seed: z.int().optional() }),
  /** seconds: how long the write took (the built-in trainer's periodic saves). */
  z.strictObject({ type: z.literal("checkpoint"), step: z.int(), path: z.string(), seconds: z.number().nonnegative().optional() }),
  z.strictObject({ type: z.literal("warning"), code: z.string().optional(), message: z.string(), file: z.string().optional() }),
  z.strictObject({ type: z.literal("error"), code: z.string(), message: z.string(), hint: z.string().optional(), retryable: z.boolean().optional() }),
  z.strictObject({ type: z.literal("log"), level: z.enum(["debug", "info"]), message: z.string() }),
  /**
   * The training settings a run executes: `settings` as the request (core's plan) resolved them,
   * `applied` as this device runs them (a lever it cannot run is off, with a coded warning).
   */
  z.strictObject({ type: z.literal("settings"), settings: z.record(z.string(), Setting), applied: z.record(z.string(), Setting) }),
  z.strictObject({ type: z.literal("done"), result: z.record(z.string(), z.unknown()).optional() }),
]);

/**
 * The one typed event stream every long step yields. The CLI renders it, the server forwards it
 * over SSE, runs keep it as events.jsonl, tests assert on it, and the Python worker writes the
 * same shapes as JSON lines.
 */
export type LoraspecEvent = z.output<typeof LoraspecEventSchema>;

export type LoraspecEventType = LoraspecEvent["type"];

const EVENT_TYPES: ReadonlySet<string> = new Set(LoraspecEventSchema.options.map((o) => o.shape.type.value));

/** The JSON Schema of one event line. */
export function eventJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(LoraspecEventSchema, { io: "output" }) as Record<string, unknown>;
}

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
