import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { mergeLora } from "@loraspec/engine/lora/merge-lora.js";
import type { SpawnFn } from "@loraspec/engine/worker/run-worker.js";
import { alive } from "../test-helpers.js";
import { buildLora, HAS_PYTHON, PYTHON, tempDir } from "./helpers.js";

// A worker stuck in native code (an SVD that does not return for minutes): it has started the
// merge, ignores SIGINT and SIGTERM, and would sleep for 10 minutes.
const STUCK = `
import json, signal, sys, time
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, signal.SIG_IGN)
req = json.load(sys.stdin)
print(json.dumps({"type": "phase", "name": "merge", "message": "stuck"}), flush=True)
print(json.dumps({"type": "progress", "task": "merge", "current": 0, "total": 1}), flush=True)
time.sleep(600)
`;

describe.runIf(HAS_PYTHON)("cancelling a worker merge (defect 7)", () => {
  it("stops a worker that ignores SIGINT and SIGTERM (SIGKILL, as `stop`), ends with E_CANCELLED and removes the temp folder", async () => {
    const dir = await tempDir();
    const a = join(dir, "a.safetensors"), b = join(dir, "b.safetensors");
    await buildLora({ path: a, arch: "flux1", format: "kohya", pick: (m) => m.native === "img_in", rank: 2 });
    await buildLora({ path: b, arch: "flux1", format: "kohya", pick: (m) => m.native === "img_in", rank: 2, seed: 2 });
    let child: ReturnType<typeof spawn> | undefined;
    // The merge's temp folder goes to this test's own TMPDIR (os.tmpdir() reads it per call; vitest runs each file
    // in its own process): other files merging at the same time make loraspec-merge-* folders in the shared one.
    const tmp = join(dir, "tmp");
    mkdirSync(tmp);
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    onTestFinished(() => {
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
    });
    let made: string[] = [];
    const fake: SpawnFn = (_python, _args, options) => {
      // The merge's temp folder exists now (the canonical inputs are in it).
      made = readdirSync(tmp).filter((n) => n.startsWith("loraspec-merge-")).map((n) => join(tmp, n));
      child = spawn(PYTHON, ["-c", STUCK], options);
      return child;
    };
    const controller = new AbortController();
    const events: LoraspecEvent[] = [];
    const t0 = Date.now();
    const error = await (async () => {
      for await (const e of mergeLora({ inputs: [{ path: a, weight: 0.5 }, { path: b, weight: 0.5 }], output: join(dir, "m.safetensors"), method: "ties", signal: controller.signal, worker: { spawn: fake, termMs: 300, killMs: 300 } })) {
        events.push(e);
        if (e.type === "progress") controller.abort();
      }
    })().catch((e) => e);
    expect(error?.code).toBe("E_CANCELLED");
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(alive(child!.pid!)).toBe(false);
    expect(child?.signalCode).toBe("SIGKILL");
    // The merge's temp folder existed while the worker ran and is gone; no output was written.
    expect(made.length).toBeGreaterThan(0);
    expect(made.filter((d) => existsSync(d))).toEqual([]);
    expect(existsSync(join(dir, "m.safetensors"))).toBe(false);
  }, 30_000);
});
