import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { defaultCacheDir } from "@loraspec/engine/setup/trainer-install.js";
import { setupWorker, WORKER_STAMP, workerStamp, type ExecFn } from "@loraspec/engine/worker/setup-worker.js";
import { findWorkerRoot, onPath, workerLayout } from "@loraspec/engine/worker/worker-paths.js";
import { drain, tempDirsPerFile } from "../test-helpers.js";

/** Temp folders, removed when this file's tests are done. */
const tempDir = tempDirsPerFile("loraspec-");

/** A checkout (worker/pyproject.toml) or an npm package (requirements + wheel, no pyproject). */
function fakeRoot(kind: "checkout" | "package", wheel = true): string {
  const root = tempDir(`loraspec-${kind}-`);
  mkdirSync(join(root, "worker"));
  writeFileSync(join(root, "worker", "requirements.txt"), "torch==2.13.0\ndiffusers==0.42.1\n");
  if (kind === "checkout") writeFileSync(join(root, "worker", "pyproject.toml"), "[project]\nname='x'\n");
  if (kind === "package" && wheel) writeFileSync(join(root, "worker", "loraspec_worker-0.1.0-py3-none-any.whl"), "zip");
  return root;
}

describe("defaultCacheDir", () => {
  it.each([
    [{ LORASPEC_CACHE_DIR: "/c", XDG_CACHE_HOME: "/x", HOME: "/h" }, "linux", "/c"],
    [{ XDG_CACHE_HOME: "/x", HOME: "/h" }, "linux", "/x/loraspec"],
    [{ HOME: "/h" }, "linux", "/h/.cache/loraspec"],
    [{ XDG_CACHE_HOME: "", HOME: "/h" }, "linux", "/h/.cache/loraspec"],
    [{ HOME: "/h" }, "darwin", "/h/Library/Caches/loraspec"],
    [{ LORASPEC_CACHE_DIR: "/c", HOME: "/h" }, "darwin", "/c"],
    [{ HOME: "/h", LOCALAPPDATA: "/l" }, "win32", join("/l", "loraspec", "Cache")],
  ] as const)("%j on %s is %s", (env, platform, want) => {
    expect(defaultCacheDir(env, platform)).toBe(want);
  });
});

describe("workerLayout", () => {
  it.each([
    ["checkout", { LORASPEC_CACHE_DIR: "/c" }, (root: string) => join(root, "worker", ".venv")],
    ["package", { LORASPEC_CACHE_DIR: "/c" }, () => "/c/worker/venv"],
    ["package", { HOME: "/h" }, () => "/h/.cache/loraspec/worker/venv"],
  ] as const)("a %s with %j keeps its venv at the expected place", (kind, env, venv) => {
    const root = fakeRoot(kind);
    const layout = workerLayout({ root, env, platform: "linux" });
    expect(layout.kind).toBe(kind);
    expect(layout.venv).toBe(venv(root));
    expect(layout.python).toBe(join(venv(root), "bin", "python"));
    expect(layout.workerSource).toEqual(
      kind === "checkout" ? { editable: join(root, "worker") } : { wheel: join(root, "worker", "loraspec_worker-0.1.0-py3-none-any.whl") },
    );
  });

  it("LORASPEC_WORKER_PYTHON wins in both layouts", () => {
    for (const kind of ["checkout", "package"] as const) {
      expect(workerLayout({ root: fakeRoot(kind), env: { LORASPEC_WORKER_PYTHON: "/opt/py" }, platform: "linux" }).python).toBe("/opt/py");
    }
  });

  it("LORASPEC_WORKER_PYTHON as a bare command name is looked up on PATH, as a shell would (the GPU machine's python3)", () => {
    const bin = tempDir("lws-path-");
    const py = join(bin, "python3-lws");
    writeFileSync(py, "#!/bin/sh\n", { mode: 0o755 });
    const env = { LORASPEC_WORKER_PYTHON: "python3-lws", PATH: ["/nonexistent", bin].join(delimiter) };
    expect(workerLayout({ root: fakeRoot("checkout"), env, platform: "linux" }).python).toBe(py);
    // found nowhere: kept as written, so the not-installed error names what was set
    expect(workerLayout({ root: fakeRoot("checkout"), env: { ...env, PATH: "/nonexistent" }, platform: "linux" }).python).toBe("python3-lws");
    // a relative path is a path, not a name
    expect(onPath("./py", {}, "linux")).toBe(resolve("./py"));
  });

  it("finds the checkout or package root from a module inside it, and LORASPEC_HOME overrides", () => {
    for (const kind of ["checkout", "package"] as const) {
      const root = fakeRoot(kind);
      mkdirSync(join(root, "lib"));
      expect(findWorkerRoot(join(root, "lib", "cli.mjs"), {})).toBe(root);
      expect(findWorkerRoot(join(root, "lib", "cli.mjs"), { LORASPEC_HOME: "/elsewhere" })).toBe("/elsewhere");
    }
  });

  it("npm run setup:worker stamps the venv as workerStamp does (doctor reads that stamp)", async () => {
    const layout = workerLayout({ env: {} });
    const script = spawnSync(process.execPath, [join(layout.root, "scripts", "setup-worker.mjs"), "--print-stamp"], { encoding: "utf8" });
    expect(script.status).toBe(0);
    expect(script.stdout.trim()).toBe(await workerStamp(layout, undefined));
  });

  it("this repository is a checkout whose venv is worker/.venv (what the tests use)", () => {
    const layout = workerLayout({ env: {} });
    expect(layout.kind).toBe("checkout");
    expect(layout.venv).toBe(join(layout.root, "worker", ".venv"));
  });
});

describe("setupWorker from an npm package", () => {
  function fakeExec(calls: string[][]): ExecFn {
    return async (command, args) => {
      calls.push([command, ...args]);
      if (command === "nvidia-smi") return { code: 127, stdout: "", stderr: "not found" };
      if (args[0] === "-c") return { code: 0, stdout: "3.11\n", stderr: "" };
      if (args[0] === "-m" && args[1] === "venv") {
        mkdirSync(join(args[2]!, "bin"), { recursive: true });
        writeFileSync(join(args[2]!, "bin", "python"), "");
        return { code: 0, stdout: "", stderr: "" };
      }
      if (args.includes("loraspec_worker")) return { code: 0, stdout: `${JSON.stringify({ type: "done", result: { cuda: { available: false } } })}\n`, stderr: "" };
      return { code: 0, stdout: "", stderr: "" };
    };
  }

  it("installs the shipped wheel into <cache>/worker/venv, shared by later runs", async () => {
    const root = fakeRoot("package");
    const cache = tempDir("loraspec-cache-");
    const env = { LORASPEC_CACHE_DIR: cache };
    const calls: string[][] = [];
    const { events, error } = await drain(setupWorker({ root, env, exec: fakeExec(calls), platform: "linux", basePython: "python3" }));
    expect(error).toBeUndefined();
    const venv = join(cache, "worker", "venv");
    expect(calls).toContainEqual(["python3", "-m", "venv", venv]);
    const wheel = join(root, "worker", "loraspec_worker-0.1.0-py3-none-any.whl");
    const workerInstall = calls.find((c) => c.includes(wheel));
    expect(workerInstall?.[0]).toBe(join(venv, "bin", "python"));
    expect(workerInstall).not.toContain("-e");
    expect(readFileSync(join(venv, WORKER_STAMP), "utf8").trim()).toBe(await workerStamp(workerLayout({ root, env, platform: "linux" }), "cpu"));
    expect(events.at(-1)).toMatchObject({ type: "done", result: { venv, layout: "package", torchBuild: "cpu" } });
    // Another project, same cache: nothing is installed again.
    const again: string[][] = [];
    await drain(setupWorker({ root, env, exec: fakeExec(again), platform: "linux" }));
    expect(again.some((c) => c.includes("install"))).toBe(false);
  });

  it("a package without the wheel is a coded error naming the folder", async () => {
    const root = fakeRoot("package", false);
    const { error } = await drain(setupWorker({ root, env: { LORASPEC_CACHE_DIR: tempDir("c-") }, exec: fakeExec([]), platform: "linux" }));
    expect(error?.code).toBe("E_FILE_NOT_FOUND");
    expect(error?.message).toContain(join(root, "worker"));
    expect(existsSync(join(root, "worker", ".venv"))).toBe(false);
  });
});
