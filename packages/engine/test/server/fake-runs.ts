import { LoraspecError } from "@loraspec/core/errors.js";
import type { RunsService } from "@loraspec/engine/server/deps.js";

/**
 * A runs service over a map of run id -> run folder, every run succeeded: what the server tests that plant
 * hostile run folders need (the real store is tested in run/). `start` calls `onStart` (a test counts runs started
 * by an attack) and numbers its runs x1, x2, ...
 */
export function fakeRuns(runDirs: Map<string, string>, onStart: () => void = () => {}): RunsService {
  let started = 0;
  return {
    list: () => [...runDirs].map(([id, runDir]) => ({ id, state: "succeeded", runDir })),
    get: (id) => {
      const runDir = runDirs.get(id);
      if (!runDir) throw new LoraspecError("E_RUN_NOT_FOUND", `No run ${id}.`);
      return { id, state: "succeeded", runDir };
    },
    start: async () => {
      onStart();
      return { id: `x${++started}` };
    },
    stop: async () => {},
    resume: async (id) => ({ id }),
  };
}
