import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseRenderFlag } from "@loraspec/core/validate/render-flags.js";
import { tempDirsPerFile } from "../../engine/test/test-helpers.js";

/** Temp folders, removed when this file's tests are done. */
const tempDir = tempDirsPerFile("loraspec-render-flags-");

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");

function run(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, env: { ...process.env, NO_COLOR: "1", CI: "1", OMP_NUM_THREADS: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("parseRenderFlag", () => {
  it.each([
    ["64", "side", 64],
    ["1024", "side", 1024],
    ["20", "count", 20],
    ["0", "scale", 0],
    ["4.5", "scale", 4.5],
    ["-3", "seed", -3],
    [undefined, "side", undefined],
  ] as const)("%s as %s -> %s", (value, kind, want) => {
    expect(parseRenderFlag(value, "--x", kind)).toBe(want);
  });

  it.each([
    ["60", "side"],
    ["0", "side"],
    ["-64", "side"],
    ["64.0001", "side"],
    ["", "side"],
    ["abc", "side"],
    ["0", "count"],
    ["2.5", "count"],
    ["-1", "scale"],
    ["Infinity", "scale"],
    ["1.5", "seed"],
  ] as const)("refuses %j as %s with E_USAGE naming the flag", (value, kind) => {
    expect(() => parseRenderFlag(value, "--x", kind)).toThrow(expect.objectContaining({ code: "E_USAGE", field: "--x" }));
  });
});

// Each of these reached the worker, loaded the base and died as E_INTERNAL with diffusers' or torch's
// own exception (`height` and `width` have to be divisible by 8, ZeroDivisionError, a negative
// dimension). Now refused before anything loads: the base and LoRA here do not even exist.
const BAD: Array<[string, string]> = [
  ["--width", "60"],
  ["--height", "-64"],
  ["--width", "0"],
  ["--steps", "0"],
  ["--steps", "2.5"],
  ["--guidance", "-1"],
  ["--max-sequence-length", "0"],
];
const COMMANDS: Array<[string, string[]]> = [
  ["sample", ["sample", "--base", "no-such-base", "--prompt", "p", "--out", "out"]],
  ["validate", ["validate", "--lora", "no-such.safetensors", "--trigger", "txcl", "--target", "character"]],
];

describe("sample and validate refuse a bad render flag up front, coded and naming it", () => {
  it.each(COMMANDS.flatMap(([name, args]) => BAD.map(([flag, value]) => [name, flag, value, args] as const)))("%s %s %s", async (_name, flag, value, args) => {
    const cwd = tempDir();
    const r = await run([...args, flag, value, "--json"], cwd);
    expect(r.code).toBe(2);
    const last = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    expect(last).toMatchObject({ ok: false, error: { code: "E_USAGE", field: flag } });
    expect(last.error.message).toContain(flag);
  });
});
