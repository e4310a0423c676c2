import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { diskFullAfterFailure, ioError } from "@loraspec/engine/run/io-errors.js";
import { openRunStore } from "@loraspec/engine/run/run-store.js";

describe("ioError: a full disk or an I/O error becomes a coded error naming the path", () => {
  const errno = (code: string, path?: string) => Object.assign(new Error(`${code}: failed, write`), { code, path });
  const table: { name: string; error: unknown; code?: string }[] = [
    { name: "Node ENOSPC", error: errno("ENOSPC", "/tmp/x/events.jsonl"), code: "E_DISK_FULL" },
    { name: "Node EDQUOT", error: errno("EDQUOT", "/tmp/x"), code: "E_DISK_FULL" },
    { name: "SQLite SQLITE_FULL", error: Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" }), code: "E_DISK_FULL" },
    { name: "Python errno 28 text", error: new Error("OSError: [Errno 28] No space left on device"), code: "E_DISK_FULL" },
    { name: "Node EROFS", error: errno("EROFS", "/ro"), code: "E_IO" },
    { name: "SQLite SQLITE_IOERR_WRITE", error: Object.assign(new Error("disk I/O error"), { code: "SQLITE_IOERR_WRITE" }), code: "E_IO" },
    { name: "ENOENT is the user's path, not the machine", error: errno("ENOENT", "/nope") },
    { name: "a plain bug", error: new TypeError("x is undefined") },
  ];
  it.each(table)("$name -> $code", ({ error, code }) => {
    const coded = ioError(error, { path: tmpdir(), neededBytes: 2 ** 20 });
    expect(coded?.code).toBe(code);
    if (code === "E_DISK_FULL") {
      expect(coded!.message).toMatch(/disk is full at .* \(.* free, 1\.0 MiB needed\)/);
      expect(coded!.hint).toMatch(/--resume/);
    }
  });
});

// A real full disk: a 1 MiB tmpfs (needs root and mount; otherwise the table above is the test).
const root = process.getuid?.() === 0 && spawnSync("mount", ["--version"]).status === 0;
describe.skipIf(!root)("the run store on a real full disk (tmpfs)", () => {
  let mnt: string;
  beforeAll(() => {
    mnt = mkdtempSync(join(tmpdir(), "loraspec-full-"));
    const r = spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]);
    if (r.status !== 0) throw new Error(`mount failed: ${r.stderr}`);
  });
  afterAll(() => {
    spawnSync("umount", [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });

  it("a write on a full disk is E_DISK_FULL; reconcile reports the settled state unsaved; a read-only open still lists", () => {
    const projectDir = join(mnt, "p");
    mkdirSync(projectDir);
    const store = openRunStore({ projectDir });
    const run = store.create({ trainer: "kohya" });
    store.transition(run.id, "starting");
    store.transition(run.id, "running", { pid: 999_999 });
    const filler = join(mnt, "filler");
    try {
      writeFileSync(filler, Buffer.alloc(4 * 2 ** 20));
    } catch {
      // filled to the last byte: that is the point
    }
    let thrown: unknown;
    try {
      for (let i = 0; i < 200; i++) store.update(run.id, { lastLogLine: `line ${i} ${"x".repeat(400)}` });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: "E_DISK_FULL", file: join(projectDir, ".loraspec", "loraspec.db") });
    const [settled] = store.reconcile({ isAlive: () => false });
    expect(settled).toMatchObject({ id: run.id, state: "interrupted", unsaved: expect.stringMatching(/disk is full/) });
    store.close();
    const readonly = openRunStore({ projectDir, readonly: true });
    expect(readonly.list()).toHaveLength(1);
    readonly.close();
    rmSync(filler);
    const again = openRunStore({ projectDir });
    again.reconcile({ isAlive: () => false });
    expect(again.get(run.id).state).toBe("interrupted");
    again.close();
  });

  it("a trainer failure is put down to the disk when less is free than its newest checkpoint takes", () => {
    const runDir = join(mnt, "run");
    const step = join(runDir, "output", "checkpoints", "step-000002");
    mkdirSync(step, { recursive: true });
    writeFileSync(join(step, "state.pt"), Buffer.alloc(300 * 1024));
    const params = { runDir, outputDir: join(runDir, "output"), fallbackBytes: 2 ** 30 };
    expect(diskFullAfterFailure(params)).toBeUndefined();
    const filler = join(mnt, "filler2");
    try {
      writeFileSync(filler, Buffer.alloc(4 * 2 ** 20));
    } catch {
      // full
    }
    expect(diskFullAfterFailure(params)).toMatchObject({ code: "E_DISK_FULL", file: runDir, message: expect.stringMatching(/300\.0 KiB needed/) });
    rmSync(filler);
    rmSync(runDir, { recursive: true });
  });
});
