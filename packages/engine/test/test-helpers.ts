import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach } from "vitest";
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

/**
 * A maker of fresh temp folders named `<prefix>XXXXXX` (or another prefix given to the maker), all removed
 * when the spec file's tests are done: for folders made at the top level or in a beforeAll, or that outlive
 * one test. Call it at a spec file's top level, or at a helper module's top level (vitest evaluates a helper
 * once per spec file that imports it).
 */
export function tempDirsPerFile(prefix: string): (otherPrefix?: string) => string {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return (otherPrefix = prefix) => {
    const dir = mkdtempSync(join(tmpdir(), otherPrefix));
    dirs.push(dir);
    return dir;
  };
}
