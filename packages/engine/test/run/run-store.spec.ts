import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { LoraspecError } from "@loraspec/core/errors.js";
import { openRunStore } from "@loraspec/engine/run/run-store.js";
import { canTransition, type RunState } from "@loraspec/engine/run/run-state.js";
import { isProcessAlive, processStartTime } from "@loraspec/engine/run/process-alive.js";
import { tempDirsPerTest } from "../test-helpers.js";

const project = tempDirsPerTest("loraspec-store-");

describe("run state machine", () => {
  const table: [RunState, RunState, boolean][] = [
    ["queued", "starting", true],
    ["queued", "running", false],
    ["starting", "running", true],
    ["running", "succeeded", true],
    ["running", "interrupted", true],
    ["running", "starting", false],
    ["interrupted", "starting", true],
    ["failed", "starting", true],
    ["cancelled", "starting", true],
    ["succeeded", "starting", false],
    ["succeeded", "failed", false],
  ];
  it.each(table)("%s -> %s allowed: %s", (from, to, allowed) => {
    expect(canTransition(from, to)).toBe(allowed);
  });

  it("walks a run through its life and refuses an illegal move with E_RUN_STATE", () => {
    const store = openRunStore({ projectDir: project() });
    const run = store.create({ trainer: "kohya", base: "sdxl", totalSteps: 10 });
    expect(run.state).toBe("queued");
    expect(run.runDir).toContain(join(".loraspec", "runs", run.id));
    store.transition(run.id, "starting");
    store.transition(run.id, "running", { pid: 123 });
    store.update(run.id, { step: 4, lastLogLine: "x".repeat(2000) });
    const done = store.transition(run.id, "succeeded", { outputPath: "/o/lora.safetensors", exitCode: 0 });
    expect(done).toMatchObject({ state: "succeeded", step: 4, pid: 123, exitCode: 0, attempts: 1 });
    expect(done.lastLogLine).toHaveLength(500);
    expect(done.endedAt).not.toBeNull();
    let error: unknown;
    try {
      store.transition(run.id, "starting");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(LoraspecError);
    expect((error as LoraspecError).code).toBe("E_RUN_STATE");
    store.close();
  });

  it("counts attempts across resumes and clears the old error", () => {
    const store = openRunStore({ projectDir: project() });
    const run = store.create({ trainer: "diffusers" });
    store.transition(run.id, "starting");
    store.transition(run.id, "failed", { errorCode: "E_OUT_OF_MEMORY", errorMessage: "oom" });
    const again = store.transition(run.id, "starting");
    expect(again).toMatchObject({ attempts: 2, errorCode: null, errorMessage: null, endedAt: null });
    store.close();
  });

  it("unknown ids give E_RUN_NOT_FOUND", () => {
    const store = openRunStore({ projectDir: project() });
    expect(() => store.get("nope")).toThrow(expect.objectContaining({ code: "E_RUN_NOT_FOUND" }));
    store.close();
  });
});

describe("reconcile", () => {
  it("marks active runs whose process is gone as interrupted, keeps live and finished ones", () => {
    const store = openRunStore({ projectDir: project() });
    const dead = store.create({ trainer: "kohya" });
    store.transition(dead.id, "starting");
    store.transition(dead.id, "running", { pid: 1111, lastLogLine: "steps: 40%" });
    const live = store.create({ trainer: "kohya" });
    store.transition(live.id, "starting");
    store.transition(live.id, "running", { pid: 2222 });
    const noPid = store.create({ trainer: "fal" });
    store.transition(noPid.id, "starting");
    const finished = store.create({ trainer: "kohya" });
    store.transition(finished.id, "starting");
    store.transition(finished.id, "failed", { pid: 1111 });

    const changed = store.reconcile({ isAlive: (pid) => pid === 2222 });
    expect(changed.map((r) => r.id).sort()).toEqual([dead.id, noPid.id].sort());
    expect(store.get(dead.id)).toMatchObject({ state: "interrupted", errorCode: "E_WORKER_CRASHED" });
    expect(store.get(dead.id).errorMessage).toContain("steps: 40%");
    expect(store.get(live.id).state).toBe("running");
    expect(store.get(finished.id).state).toBe("failed");
    store.close();
  });

  it("leaves a run alone while its supervising loraspec lives (the trainer just exited, the end is being recorded)", () => {
    const store = openRunStore({ projectDir: project() });
    const run = store.create({ trainer: "kohya" });
    store.transition(run.id, "starting");
    store.transition(run.id, "running", { pid: 999_999 });
    mkdirSync(run.runDir, { recursive: true });
    writeFileSync(join(run.runDir, "supervisor.pid"), `${process.pid} ${processStartTime(process.pid) ?? ""}\n`);
    expect(store.reconcile()).toEqual([]);
    expect(store.get(run.id).state).toBe("running");
    writeFileSync(join(run.runDir, "supervisor.pid"), "999998\n");
    expect(store.reconcile().map((r) => r.id)).toEqual([run.id]);
    store.close();
  });

  it("uses the real process table by default (a recycled pid with another start time is not ours)", async () => {
    const store = openRunStore({ projectDir: project() });
    const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"], { stdio: "ignore" });
    await new Promise((r) => child.once("spawn", r));
    const pid = child.pid!;
    expect(isProcessAlive(pid)).toBe(true);
    const a = store.create({ trainer: "kohya" });
    store.transition(a.id, "starting");
    store.transition(a.id, "running", { pid, pidStart: processStartTime(pid) ?? null });
    const b = store.create({ trainer: "kohya" });
    store.transition(b.id, "starting");
    store.transition(b.id, "running", { pid, pidStart: "1" });
    store.reconcile();
    expect(store.get(a.id).state).toBe("running");
    expect(store.get(b.id).state).toBe(processStartTime(pid) === undefined ? "running" : "interrupted");
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    store.reconcile();
    expect(store.get(a.id).state).toBe("interrupted");
    store.close();
  });
});

describe("storage", () => {
  it("uses WAL and lets other connections read while one writes", () => {
    const dir = project();
    const writer = openRunStore({ projectDir: dir });
    const reader = openRunStore({ projectDir: dir });
    expect(new Database(writer.dbPath).pragma("journal_mode", { simple: true })).toBe("wal");
    const run = writer.create({ trainer: "kohya" });
    writer.transition(run.id, "starting");
    writer.transition(run.id, "running", { pid: 1 });
    for (let step = 1; step <= 50; step++) {
      writer.update(run.id, { step });
      expect(reader.get(run.id).step).toBe(step);
    }
    writer.close();
    reader.close();
  });

  it("a separate process reads consistently while this one writes", async () => {
    const dir = project();
    const store = openRunStore({ projectDir: dir });
    const run = store.create({ trainer: "kohya" });
    store.transition(run.id, "starting");
    store.transition(run.id, "running", { pid: 1 });
    // The reader polls the row in its own process; steps must only ever go up and never error.
    const script = `
      const Database = require(${JSON.stringify(createRequire(import.meta.url).resolve("better-sqlite3"))});
      const db = new Database(${JSON.stringify(store.dbPath)}, { readonly: true });
      db.pragma("busy_timeout = 5000");
      let last = -1, reads = 0;
      const until = Date.now() + 20000;
      while (Date.now() < until) {
        const row = db.prepare("SELECT step, state FROM runs WHERE id = ?").get(${JSON.stringify(run.id)});
        const step = row.step ?? 0;
        if (step < last) { console.log("WENT_BACK"); process.exit(1); }
        last = step; reads++;
        if (row.state === "succeeded") break;
      }
      console.log(JSON.stringify({ last, reads }));
    `;
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    for (let step = 1; step <= 200; step++) store.update(run.id, { step });
    store.transition(run.id, "succeeded");
    const code = await new Promise((r) => child.once("exit", r));
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ last: 200 });
    store.close();
  });
});
