import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ERROR_CODES, SYMPTOM_CODES, workerErrorCode } from "@loraspec/core/errors.js";
import { classifyFailure } from "@loraspec/engine/run/supervise-process.js";
import { runWorker } from "@loraspec/engine/worker/run-worker.js";
import { drain } from "../test-helpers.js";

// One rule for "is this the worker's own code": the train supervisor and runWorker (sample, merge,
// caption, ...) used two (a 10-code list and `code in ERROR_CODES`, which also took "constructor").
const ALL = Object.keys(ERROR_CODES) as (keyof typeof ERROR_CODES)[];
const NOT_CODES = ["constructor", "toString", "__proto__", "hasOwnProperty", "E_MADE_UP", "", "e_usage"];

/** runWorker over a stand-in process that prints one error event and exits 1. */
async function viaRunWorker(code: string) {
  const line = JSON.stringify({ type: "error", code, message: `m ${code}` });
  const { error } = await drain(runWorker({ command: "x", request: {}, python: process.execPath, spawn: (cmd, _args, opts) => spawn(cmd, ["-e", `process.stdout.write(${JSON.stringify(line + "\n")}); process.exit(1)`], opts) }));
  return error;
}

const viaSupervisor = (code: string) =>
  classifyFailure({ lastLines: ["Traceback (most recent call last):", "ValueError: boom"], exitCode: 1, exitSignal: null, reported: [{ type: "error", code, message: `m ${code}` } as never] });

describe("a worker's reported code is trusted by one rule", () => {
  it.each(ALL)("%s: runWorker keeps it; the supervisor keeps it unless it is a symptom", async (code) => {
    expect(workerErrorCode(code)).toBe(code);
    expect((await viaRunWorker(code))?.code).toBe(code);
    const sup = viaSupervisor(code);
    if (SYMPTOM_CODES.has(code)) expect(sup.code).toBe("E_TRAINER_FAILED");
    else expect([sup.code, sup.message]).toEqual([code, `m ${code}`]);
  });

  it.each(NOT_CODES)("%j is not a code: runWorker says E_TRAINER_FAILED, the supervisor reads the output", async (code) => {
    expect(workerErrorCode(code)).toBeUndefined();
    const err = await viaRunWorker(code);
    expect(err?.code).toBe("E_TRAINER_FAILED");
    expect(err?.details).toMatchObject({ workerCode: code });
    expect(viaSupervisor(code).code).toBe("E_TRAINER_FAILED");
  });

  it("the launcher's symptoms are core's (launch.py _SYMPTOMS)", () => {
    const src = readFileSync(resolve(__dirname, "../../../../worker/loraspec_worker/launch.py"), "utf8");
    const tuple = /^_SYMPTOMS = \(([^)]*)\)/m.exec(src)?.[1];
    expect(tuple).toBeDefined();
    expect(new Set([...tuple!.matchAll(/"(E_[A-Z_]+)"/g)].map((m) => m[1]))).toEqual(new Set(SYMPTOM_CODES));
  });
});
