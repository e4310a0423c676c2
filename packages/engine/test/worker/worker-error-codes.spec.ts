import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "@loraspec/core/errors.js";

const WORKER = resolve(__dirname, "../../../../worker");

function pythonFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "__pycache__" ? [] : pythonFiles(path);
    return name.endsWith(".py") ? [path] : [];
  });
}

describe("the worker's error codes", () => {
  // run-worker.ts maps a code core does not know to E_TRAINER_FAILED: a code added on one side only
  // would reach the user as the wrong code (exit status, HTTP status, retryable) without a failing test.
  it("every code the worker raises is one of core's", () => {
    const raised = new Map<string, string>();
    for (const file of [...pythonFiles(join(WORKER, "loraspec_worker")), ...pythonFiles(join(WORKER, "toyworld"))]) {
      for (const m of readFileSync(file, "utf8").matchAll(/WorkerError\(\s*"(E_[A-Z0-9_]+)"/g)) raised.set(m[1]!, file);
    }
    expect(raised.size).toBeGreaterThan(10);
    const unknown = [...raised].filter(([code]) => !(code in ERROR_CODES)).map(([code, file]) => `${code} (${file})`);
    expect(unknown).toEqual([]);
  });
});
