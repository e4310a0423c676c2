import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { buildLora, HAS_PYTHON, REPO, tempDir } from "./helpers.js";

const BIN = join(REPO, "bin/loraspec.mjs");
const cli = (args: string[], cwd = REPO) => spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });

describe("loraspec merge / convert flags and cancellation (CLI)", () => {
  it("bad flags exit 2 with E_USAGE naming the flag; a negative weight merges; ./x is the input", async () => {
    const dir = await tempDir();
    const a = join(dir, "a.safetensors"), b = join(dir, "b.safetensors");
    await buildLora({ path: a, arch: "flux1", format: "kohya", pick: (m) => m.native === "img_in", rank: 2, alpha: () => -1 });
    await buildLora({ path: b, arch: "flux1", format: "kohya", pick: (m) => m.native === "img_in", rank: 2, seed: 2 });
    for (const flags of [["--method", "svd", "--rank", "-1"], ["--method", "svd", "--rank", "0"], ["--method", "ties", "--density", "2"], ["--method", "cat", "--rank", "4"], ["--method", "svd", "--rank", "abc"]]) {
      const r = cli(["merge", `${a}:0.5`, `${b}:0.5`, ...flags, "-o", join(dir, "m.safetensors")]);
      expect([r.status, r.stderr.includes("E_USAGE"), r.stderr.includes(flags[2]!)], flags.join(" ")).toEqual([2, true, true]);
    }
    expect(cli(["merge", `${a}:-0.5`, `${b}:0.3`, "--method", "cat", "-o", join(dir, "m.safetensors")]).status).toBe(0);
    const same = cli(["convert", "./a.safetensors", "--to", "kohya", "-o", `./${relative(dir, a)}`], dir);
    expect([same.status, same.stderr.includes("E_USAGE")]).toEqual([2, true]);
    expect(cli(["convert", a, "--to", "diffusers", "-o", join(dir, "d.safetensors")]).status).toBe(0);
  }, 60_000);

  it.runIf(HAS_PYTHON)("Ctrl-C during a worker merge stops the worker, exits 130 and leaves no temp folder", async () => {
    const dir = await tempDir();
    const a = join(dir, "a.safetensors"), b = join(dir, "b.safetensors");
    // Enough FLUX.1 modules that the worker is still computing when the signal comes.
    const pick = (m: { native: string }) => /^single_blocks\.[0-9]\.linear1$/.test(m.native);
    await buildLora({ path: a, arch: "flux1", format: "kohya", pick, rank: 4 });
    await buildLora({ path: b, arch: "flux1", format: "kohya", pick, rank: 4, seed: 2 });
    // The merge's temp folder goes to a TMPDIR of this test's own: other test files merging at the same time
    // (vitest runs files in parallel) make loraspec-merge-* folders in the shared temp dir, which this test
    // would count as its own and find still there (it failed that way under load).
    const tmp = join(dir, "tmp");
    mkdirSync(tmp);
    const child = spawn(process.execPath, [BIN, "merge", `${a}:0.5`, `${b}:0.5`, "--method", "ties", "-o", join(dir, "m.safetensors"), "--json"], { env: { ...process.env, OMP_NUM_THREADS: "1", TMPDIR: tmp } });
    let out = "";
    let made: string[] = [];
    const exit = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    await new Promise<void>((resolve) => {
      child.stdout.on("data", (d: Buffer) => {
        out += String(d);
        // The worker has started its first module: interrupt as a terminal's Ctrl-C would.
        if (out.includes('"name":"merge"') && made.length === 0) {
          made = readdirSync(tmp).filter((n) => n.startsWith("loraspec-merge-")).map((n) => join(tmp, n));
          child.kill("SIGINT");
          resolve();
        }
      });
      void exit.then(() => resolve());
    });
    expect(await exit).toBe(130);
    expect(made.length).toBeGreaterThan(0);
    expect(made.filter((d) => existsSync(d))).toEqual([]);
    expect(existsSync(join(dir, "m.safetensors"))).toBe(false);
  }, 120_000);
});
