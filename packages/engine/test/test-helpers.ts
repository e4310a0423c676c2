import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";
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

/**
 * A maker of fresh temp folders named `<prefix>XXXXXX`, every one removed after each test. Call it
 * once at a spec file's top level: `const project = tempDirsPerTest("loraspec-store-");`.
 */
export function tempDirsPerTest(prefix: string): () => string {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
}
