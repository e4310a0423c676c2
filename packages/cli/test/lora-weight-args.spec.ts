import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { parseMergeInput } from "@loraspec/engine/lora/merge-lora.js";
import { parseLoraArg } from "../src/commands/sample.js";

/**
 * `merge A:W` and `sample --lora A:W` read one syntax through one parser (core lora/options.ts
 * parseWeightedPath). Before, sample took only `-?\d+(\.\d+)?`: `x.safetensors:.5`, `:1e-1` and
 * `:+0.5` became a file named "x.safetensors:.5" (E_FILE_NOT_FOUND) while merge read them, and
 * sample ran `:99` that merge refuses.
 */
const TABLE: Array<[string, string, number]> = [
  ["a.safetensors", "a.safetensors", 1],
  ["a.safetensors:0.8", "a.safetensors", 0.8],
  ["a.safetensors:.5", "a.safetensors", 0.5],
  ["a.safetensors:+0.5", "a.safetensors", 0.5],
  ["a.safetensors:1e-1", "a.safetensors", 0.1],
  ["a.safetensors:-2", "a.safetensors", -2],
  ["a.safetensors:3.", "a.safetensors", 3],
  ["dir:x/a.safetensors:-0.25", "dir:x/a.safetensors", -0.25],
  ["C:\\loras\\c.safetensors:1.2", "C:\\loras\\c.safetensors", 1.2],
  ["C:1", "C:1", 1],
  ["weird:name.safetensors", "weird:name.safetensors", 1],
];

describe("LoRA:weight arguments read the same in merge and sample", () => {
  it.each(TABLE)("%s", (arg, path, weight) => {
    expect(parseMergeInput(arg)).toEqual({ path, weight });
    expect(parseLoraArg(arg)).toEqual({ path, weight });
  });

  it.each(["a.safetensors:99", "a.safetensors:-10.5", "a.safetensors:1e3"])("sample refuses %s as merge does (E_USAGE)", (arg) => {
    let error: unknown;
    try {
      parseLoraArg(arg);
    } catch (e) {
      error = e;
    }
    expect(isLoraspecError(error) && error.code).toBe("E_USAGE");
  });
});

/**
 * The files decide what a colon means: `merge a.safetensors:abc b.safetensors` said E_FILE_NOT_FOUND for
 * "a.safetensors:abc" while a.safetensors was there; a final `:<not a number>` after a path that exists is a
 * mistyped weight (E_USAGE naming it). Paths that really hold a colon still read as paths.
 */
describe("a colon against the files on disk", () => {
  const d = mkdtempSync(join(tmpdir(), "loraspec-colon-"));
  afterAll(() => rmSync(d, { recursive: true, force: true }));
  for (const f of ["a.safetensors", "b.safetensors", "weird:name.safetensors", "x.safetensors:0.5", "dir:v2/a.safetensors"]) {
    mkdirSync(join(d, f, ".."), { recursive: true });
    writeFileSync(join(d, f), "");
  }
  const p = (f: string) => join(d, f);

  it.each<[string, string, number]>([
    ["a.safetensors:0.5", "a.safetensors", 0.5],
    ["weird:name.safetensors", "weird:name.safetensors", 1],
    ["weird:name.safetensors:0.5", "weird:name.safetensors", 0.5],
    ["x.safetensors:0.5", "x.safetensors:0.5", 1], // the file of that name; x.safetensors is not one
    ["dir:v2/a.safetensors", "dir:v2/a.safetensors", 1],
    ["dir:v2/a.safetensors:-1", "dir:v2/a.safetensors", -1],
    ["missing.safetensors:abc", "missing.safetensors:abc", 1], // nothing there: the open says E_FILE_NOT_FOUND
  ])("%s is a path", (arg, path, weight) => {
    expect(parseMergeInput(p(arg))).toEqual({ path: p(path), weight });
    expect(parseLoraArg(p(arg))).toEqual({ path: p(path), weight });
  });

  it.each([
    ["a.safetensors:abc", "abc"],
    ["a.safetensors:0.5x", "0.5x"],
    ["a.safetensors:", ""],
    ["weird:name.safetensors:w", "w"],
  ])("%s is a weight that is not a number: E_USAGE naming it", (arg, weight) => {
    for (const parse of [parseMergeInput, parseLoraArg]) {
      let error: unknown;
      try {
        parse(p(arg));
      } catch (e) {
        error = e;
      }
      expect(isLoraspecError(error) && error.code).toBe("E_USAGE");
      expect((error as Error).message).toContain(`'${weight}' is not a weight: after the last ':' of '${p(arg)}' comes a number in [-10, 10]`);
    }
  });

  it("the CLI: merge a.safetensors:abc b.safetensors says so, exit 2, no stack", () => {
    const bin = fileURLToPath(new URL("../../../bin/loraspec.mjs", import.meta.url));
    const r = spawnSync(process.execPath, [bin, "merge", "a.safetensors:abc", "b.safetensors", "-o", "m.safetensors"], { cwd: d, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error \[E_USAGE\] weight of a\.safetensors: 'abc' is not a weight: after the last ':' of 'a\.safetensors:abc' comes a number in \[-10, 10\] \(the file a\.safetensors exists; a\.safetensors:abc does not\)\n  fix: Write a\.safetensors:0\.8, or a\.safetensors alone for weight 1\.\n$/);
  });
});

