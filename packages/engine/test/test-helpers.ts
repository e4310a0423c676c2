import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";

/** Every event of a stream, and the LoraspecError it ended with (any other error is rethrown). */
export async function drain(stream: AsyncIterable<LoraspecEvent>): Promise<{ events: LoraspecEvent[]; error?: LoraspecError }> {
  const events: LoraspecEvent[] = [];
  try {
    for await (const event of stream) events.push(event);
    return { events };
  } catch (error) {
    if (error instanceof LoraspecError) return { events, error };
    throw error;
  }
}

/** Whether a process with this pid exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
