import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents, type LoraspecEvent } from "@loraspec/core/events.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import type { TrainerPin } from "@loraspec/core/trainers/pins.js";
import { setupTrainer, type RunFn } from "@loraspec/engine/setup/setup-trainer.js";
import { findTrainerInstall, SETUP_MANIFEST, trainerRoot } from "@loraspec/engine/setup/trainer-install.js";

const HELP_SCRIPT = `import argparse\nargparse.ArgumentParser(description="fake trainer").parse_args()\n`;
const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", ...args], { cwd, encoding: "utf8" }).trim();

/** A fake minimal "trainer": an empty requirements.txt and two entry scripts answering --help. */
function makeTrainerRepo(dir: string): string {
  git(dir, "init", "--quiet", "-b", "main");
  writeFileSync(join(dir, "requirements.txt"), "");
  writeFileSync(join(dir, "sdxl_train_network.py"), HELP_SCRIPT);
  writeFileSync(join(dir, "flux_train_network.py"), HELP_SCRIPT);
  git(dir, "add", ".");
  git(dir, "commit", "--quiet", "-m", "fake trainer");
  git(dir, "tag", "v0.10.1");
  return git(dir, "rev-parse", "HEAD");
}

let work: string;
let repo: string;
let pin: TrainerPin;
const env = {} as NodeJS.ProcessEnv; // no LORASPEC_* overrides from the machine running the tests

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "loraspec-setup-"));
  repo = join(work, "repo");
  execFileSync("mkdir", ["-p", repo]);
  const commit = makeTrainerRepo(repo);
  pin = {
    id: "kohya",
    label: "fake sd-scripts",
    repo,
    ref: "v0.10.1",
    commit,
    version: "v0.10.1",
    entryScripts: ["sdxl_train_network.py", "flux_train_network.py"],
    requirementsFile: "requirements.txt",
    source: "test",
    asOf: "2026-11-29",
  };
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const phases = (events: LoraspecEvent[]) => events.flatMap((e) => (e.type === "phase" ? [e.name] : []));

describe("setupTrainer", () => {
  it("clones the pinned commit, creates a venv, installs requirements, checks --help; a rerun reuses it all", async () => {
    const cacheDir = join(work, "cache");
    const events = await collectEvents(setupTrainer({ trainer: "kohya", cacheDir, pin, env }));
    expect(phases(events)).toEqual(["clone", "venv", "install", "verify", "tokenizers"]);
    const root = join(cacheDir, "kohya");
    // The fake checkout has no sd-scripts strategies: the tokenizers are not cached, which is a warning, not a failure.
    expect(events.filter((e) => e.type === "warning").map((e) => e.type === "warning" && e.code)).toEqual(["TOKENIZERS_NOT_CACHED"]);
    expect(git(root, "rev-parse", "HEAD")).toBe(pin.commit);
    expect(existsSync(join(root, ".venv", "bin", "python"))).toBe(true);
    const done = events.at(-1);
    expect(done).toMatchObject({ type: "done", result: { trainer: "kohya", commit: pin.commit, trainerDir: root, venvDir: join(root, ".venv"), tokenizerCacheDir: join(root, "tokenizers") } });
    expect(JSON.parse(readFileSync(join(root, SETUP_MANIFEST), "utf8"))).toMatchObject({ commit: pin.commit });
    expect(findTrainerInstall({ trainer: "kohya", cacheDir, env })).toMatchObject({ trainerDir: root });
    expect(events.filter((e) => e.type === "log" && e.level === "info").map((e) => e.type === "log" && e.message)).toEqual([
      "sdxl_train_network.py --help answered",
      "flux_train_network.py --help answered",
    ]);

    const again = await collectEvents(setupTrainer({ trainer: "kohya", cacheDir, pin, env }));
    const messages = again.flatMap((e) => (e.type === "log" ? [e.message] : []));
    expect(messages).toContain(`${root} is already at ${pin.commit.slice(0, 7)}`);
    expect(messages).toContain(`reusing ${join(root, ".venv")}`);
  });

  it("uses --source in place and fails clearly when an entry script does not answer --help", async () => {
    const cacheDir = join(work, "cache"); // the venv from the first test is reused
    const source = join(work, "source");
    execFileSync("cp", ["-r", repo, source]);
    writeFileSync(join(source, "flux_train_network.py"), "import sys\nprint('ImportError: no module named torch', file=sys.stderr)\nsys.exit(1)\n");
    const events: LoraspecEvent[] = [];
    try {
      for await (const event of setupTrainer({ trainer: "kohya", cacheDir, source, pin, env })) events.push(event);
      expect.unreachable();
    } catch (error) {
      expect(isLoraspecError(error) && error.code).toBe("E_TRAINER_FAILED");
      expect((error as Error).message).toContain("flux_train_network.py --help failed");
      expect(isLoraspecError(error) && error.hint).toContain("no module named torch");
    }
    expect(phases(events)).toEqual(["source", "venv", "install", "verify"]);
  });

  it("refuses a pinned commit the repository does not have", async () => {
    const cacheDir = join(work, "cache-bad");
    const bad = { ...pin, commit: "0".repeat(40) };
    await expect(collectEvents(setupTrainer({ trainer: "kohya", cacheDir, pin: bad, env }))).rejects.toMatchObject({ code: "E_TRAINER_FAILED" });
  });

  it("refuses a --source folder that does not exist", async () => {
    await expect(collectEvents(setupTrainer({ trainer: "kohya", cacheDir: join(work, "c2"), source: join(work, "nope"), pin, env }))).rejects.toMatchObject({
      code: "E_FILE_NOT_FOUND",
    });
  });
});

describe("trainerRoot", () => {
  it.each([
    [{ trainer: "kohya" as const, cacheDir: "rel/cache", env: {} }, `${process.cwd()}/rel/cache/kohya`],
    [{ trainer: "ai-toolkit" as const, env: { LORASPEC_CACHE_DIR: "/c" } }, "/c/ai-toolkit"],
    [{ trainer: "ai-toolkit" as const, env: { LORASPEC_AI_TOOLKIT_DIR: "/opt/aitk" } }, "/opt/aitk"],
    [{ trainer: "kohya" as const, env: { XDG_CACHE_HOME: "/x" } }, "/x/loraspec/kohya"],
  ])("%o -> %s (always absolute: the venv python runs with cwd = the checkout)", (params, expected) => {
    expect(trainerRoot(params)).toBe(expected);
  });
});

describe("setupTrainer torch step", () => {
  const recordingRun = (calls: string[][]): RunFn => async (command, args, options) => {
    calls.push([command, ...args]);
    if (args.includes("rev-parse")) options.onLine?.(pin.commit);
    return { code: 0, tail: "" };
  };
  const withTorch = () => ({ ...pin, torch: { packages: ["torch==2.6.0", "torchvision==0.21.0"], indexUrl: "https://example/cu124", source: "test" } });

  it.each([
    [undefined, "https://example/cu124"],
    ["https://example/cpu", "https://example/cpu"],
  ])("installs the pinned torch build (index %s) before the requirements", async (torchIndexUrl, index) => {
    const calls: string[][] = [];
    await collectEvents(setupTrainer({ trainer: "kohya", cacheDir: join(work, "c3"), source: repo, pin: withTorch(), torchIndexUrl, run: recordingRun(calls), env }));
    const pipCalls = calls.filter((c) => c.includes("pip")).map((c) => c.slice(c.indexOf("install") + 1).join(" "));
    expect(pipCalls).toEqual([`--disable-pip-version-check torch==2.6.0 torchvision==0.21.0 --index-url ${index}`, "--disable-pip-version-check -r requirements.txt"]);
  });

  it("caches sd-scripts' SDXL and FLUX tokenizers through its own strategies (kohya only)", async () => {
    const calls: string[][] = [];
    await collectEvents(setupTrainer({ trainer: "kohya", cacheDir: join(work, "c5"), source: repo, pin, run: recordingRun(calls), env }));
    const prefill = calls.find((c) => c[1] === "-c");
    expect(prefill?.[2]).toContain("strategy_sdxl.SdxlTokenizeStrategy(None, sys.argv[1])");
    expect(prefill?.[3]).toBe(join(work, "c5", "kohya", "tokenizers"));
    const aitk: string[][] = [];
    await collectEvents(setupTrainer({ trainer: "ai-toolkit", cacheDir: join(work, "c6"), source: repo, pin: { ...pin, id: "ai-toolkit" }, run: recordingRun(aitk), env }));
    expect(aitk.some((c) => c[1] === "-c")).toBe(false);
  });

  it("skips torch with torchIndexUrl 'skip'", async () => {
    const calls: string[][] = [];
    await collectEvents(setupTrainer({ trainer: "kohya", cacheDir: join(work, "c4"), source: repo, pin: withTorch(), torchIndexUrl: "skip", run: recordingRun(calls), env }));
    expect(calls.filter((c) => c.some((a) => a.startsWith("torch==")))).toEqual([]);
  });
});
