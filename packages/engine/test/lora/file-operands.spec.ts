import { spawnSync } from "node:child_process";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { convertLora } from "@loraspec/engine/lora/convert-lora.js";
import { inspectLora } from "@loraspec/engine/lora/inspect-lora.js";
import { mergeLora } from "@loraspec/engine/lora/merge-lora.js";
import { buildLora, REPO, tempDir } from "./helpers.js";

/**
 * Every file operand of inspect, convert and merge (inputs and -o) x every kind of unusable path: a
 * coded error naming the path and the option, nothing written, through the library and the built CLI
 * (exit 2, no stack). Before, a folder given as -o with --force (rename EISDIR), `-o ""`, -o under a
 * file and a folder given as input (read EISDIR) were "internal error" with a Node stack, exit 70.
 */

const cli = (args: string[], cwd: string) => spawnSync(process.execPath, [join(REPO, "bin/loraspec.mjs"), ...args], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });

interface Fixture {
  dir: string;
  a: string;
  b: string;
}

async function fixture(): Promise<Fixture> {
  const dir = await tempDir();
  const a = join(dir, "a.safetensors"), b = join(dir, "b.safetensors");
  const pick = (m: { native: string }) => m.native.startsWith("double_blocks.0.img_attn");
  await buildLora({ path: a, arch: "flux1", format: "kohya", pick, rank: 2, alpha: () => 1 });
  await buildLora({ path: b, arch: "flux1", format: "kohya", pick, rank: 2, seed: 2, alpha: () => 2 });
  await mkdir(join(dir, "dir.safetensors"));
  spawnSync("mkfifo", [join(dir, "fifo.safetensors")]);
  return { dir, a, b };
}

/** Bad paths, relative to the fixture folder (the CLI runs there), with the code each must give as an input and as an output. */
const KINDS: Array<{ kind: string; path: string; input: string; output: string }> = [
  { kind: "a folder", path: "dir.safetensors", input: "E_USAGE", output: "E_USAGE" },
  { kind: "an empty name", path: "", input: "E_USAGE", output: "E_USAGE" },
  { kind: "a path under a file", path: "a.safetensors/x.safetensors", input: "E_FILE_NOT_FOUND", output: "E_USAGE" },
  { kind: "a path two levels under a file", path: "a.safetensors/sub/x.safetensors", input: "E_FILE_NOT_FOUND", output: "E_USAGE" },
  { kind: "a name ending in /", path: "newdir/", input: "E_FILE_NOT_FOUND", output: "E_USAGE" },
  { kind: "a FIFO", path: "fifo.safetensors", input: "E_USAGE", output: "E_USAGE" },
  { kind: "a missing file", path: "missing.safetensors", input: "E_FILE_NOT_FOUND", output: "" },
];

/** Each operand: how the library and the CLI are called with `bad` in its place, and the option its error names. */
const OPERANDS: Array<{ operand: string; role: "input" | "output"; field: string; lib: (f: Fixture, bad: string) => Promise<unknown>; args: (bad: string) => string[] }> = [
  { operand: "inspect <file>", role: "input", field: "<file>", lib: (_f, bad) => inspectLora({ path: bad }), args: (bad) => ["inspect", bad] },
  { operand: "convert <file>", role: "input", field: "<file>", lib: (f, bad) => collectEvents(convertLora({ input: bad, output: join(f.dir, "o.safetensors"), to: "diffusers" })), args: (bad) => ["convert", bad, "--to", "diffusers", "-o", "o.safetensors"] },
  { operand: "convert -o", role: "output", field: "--output", lib: (f, bad) => collectEvents(convertLora({ input: f.a, output: bad, to: "diffusers", overwrite: true })), args: (bad) => ["convert", "a.safetensors", "--to", "diffusers", "-o", bad, "--force"] },
  { operand: "merge input 2", role: "input", field: "input 2", lib: (f, bad) => collectEvents(mergeLora({ inputs: [{ path: f.a, weight: 0.5 }, { path: bad, weight: 0.5 }], output: join(f.dir, "o.safetensors"), method: "cat" })), args: (bad) => ["merge", "a.safetensors:0.5", `${bad}:0.5`, "-o", "o.safetensors"] },
  { operand: "merge -o", role: "output", field: "--output", lib: (f, bad) => collectEvents(mergeLora({ inputs: [{ path: f.a, weight: 0.5 }, { path: f.b, weight: 0.5 }], output: bad, method: "cat", overwrite: true })), args: (bad) => ["merge", "a.safetensors:0.5", "b.safetensors:0.5", "-o", bad, "--force"] },
  { operand: "merge X:S input", role: "input", field: "input 1", lib: (f, bad) => collectEvents(mergeLora({ inputs: [{ path: bad, weight: 2 }], output: join(f.dir, "o.safetensors"), method: "cat" })), args: (bad) => ["merge", `${bad}:2`, "-o", "o.safetensors"] },
  { operand: "merge X:S -o", role: "output", field: "--output", lib: (f, bad) => collectEvents(mergeLora({ inputs: [{ path: f.a, weight: 2 }], output: bad, method: "cat", overwrite: true })), args: (bad) => ["merge", "a.safetensors:2", "-o", bad, "--force"] },
];

const CASES = OPERANDS.flatMap((o) => KINDS.filter((k) => (o.role === "input" ? k.input : k.output) !== "").map((k) => ({ ...o, ...k, code: o.role === "input" ? k.input : k.output })))
  // "x:0.5" with an empty x is not a weighted path: the merge inputs take the name alone.
  .filter((c) => !(c.path === "" && c.operand.startsWith("merge") && c.role === "input"));

async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

describe("unusable file operands: a coded error naming the path and the option, nothing written", () => {
  it.each(CASES)("library: $operand as $kind -> $code", async ({ lib, path, field, code }) => {
    const f = await fixture();
    const before = await listing(f.dir);
    const bad = path === "" ? "" : join(f.dir, path);
    const error = await lib(f, bad).then(() => undefined, (e: unknown) => e);
    expect(isLoraspecError(error), String(error)).toBe(true);
    expect({ code: (error as { code: string }).code, field: (error as { field?: string }).field, file: (error as { file?: string }).file }).toEqual({ code, field, file: bad === "" ? undefined : bad });
    expect(await listing(f.dir)).toEqual(before);
  });

  it.each(CASES)("CLI: $operand as $kind -> exit 2, $code, no stack", async ({ args, path, code }) => {
    const f = await fixture();
    const before = await listing(f.dir);
    const r = cli(args(path), f.dir);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain(`[${code}]`);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    if (path !== "") expect(r.stderr).toContain(path);
    const json = cli([...args(path), ...(args(path)[0] === "inspect" ? [] : ["--json"])], f.dir);
    expect(json.status).toBe(2);
    expect(await listing(f.dir)).toEqual(before);
  });
});
