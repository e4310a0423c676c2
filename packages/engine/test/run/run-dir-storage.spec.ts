import { cpSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { openRunStore } from "@loraspec/engine/run/run-store.js";
import { tempDirsPerTest } from "../test-helpers.js";

const tmp = tempDirsPerTest("loraspec-rundir-");

/** Writes a run row's run_dir behind the store's back, as an edited or copied database would. */
function setRunDir(projectDir: string, id: string, runDir: string): void {
  const db = new Database(join(projectDir, ".loraspec", "loraspec.db"));
  db.prepare("UPDATE runs SET run_dir = ? WHERE id = ?").run(runDir, id);
  db.close();
}

describe("run folders in the run store", () => {
  it("are stored relative to the project, so a moved project keeps its runs", () => {
    const root = tmp();
    const before = join(root, "before");
    mkdirSync(before);
    const store = openRunStore({ projectDir: before });
    const run = store.create({ trainer: "diffusers" });
    expect(run.runDir).toBe(join(before, ".loraspec", "runs", run.id));
    store.close();
    const db = new Database(join(before, ".loraspec", "loraspec.db"));
    expect((db.prepare("SELECT run_dir FROM runs").get() as { run_dir: string }).run_dir).toBe(`.loraspec/runs/${run.id}`);
    db.close();

    const after = join(root, "after");
    cpSync(before, after, { recursive: true });
    rmSync(before, { recursive: true });
    const moved = openRunStore({ projectDir: after });
    expect(moved.get(run.id).runDir).toBe(join(after, ".loraspec", "runs", run.id));
    moved.close();
  });

  it("reads an absolute path from an older store as this project's own run folder", () => {
    const projectDir = tmp();
    const store = openRunStore({ projectDir });
    const run = store.create({ trainer: "diffusers" });
    setRunDir(projectDir, run.id, `/somewhere/old/project/.loraspec/runs/${run.id}`);
    expect(store.get(run.id).runDir).toBe(join(projectDir, ".loraspec", "runs", run.id));
    store.close();
  });

  it.each([
    ["a relative path that climbs out", "../../outside"],
    ["an absolute path elsewhere", "/etc"],
    ["another run's name in a foreign folder", "/tmp/x/.loraspec/runs/OTHER"],
  ])("refuses %s with E_PATH_OUTSIDE_PROJECT", (_name, runDir) => {
    const projectDir = tmp();
    const store = openRunStore({ projectDir });
    const run = store.create({ trainer: "diffusers" });
    setRunDir(projectDir, run.id, runDir);
    expect(() => store.get(run.id)).toThrow(expect.objectContaining({ code: "E_PATH_OUTSIDE_PROJECT" }));
    store.close();
  });

  it("lists every other run when one row points outside, and names the refused row", () => {
    const projectDir = tmp();
    const store = openRunStore({ projectDir });
    const good = store.create({ trainer: "diffusers" });
    const bad = store.create({ trainer: "diffusers" });
    setRunDir(projectDir, bad.id, "/etc");
    expect(store.list().map((r) => r.id)).toEqual([good.id]);
    expect(store.refused).toEqual([expect.objectContaining({ id: bad.id, message: expect.stringContaining("outside the project") })]);
    store.close();
  });
});
