import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { isLoraspecError, type LoraspecError } from "@loraspec/core/errors.js";
import * as fsOperands from "@loraspec/engine/fs/file-operands.js";
import * as loraOperands from "@loraspec/engine/lora/file-operands.js";
import { printError } from "../src/output.js";

// A file operand's error names its path once in the printed line (it printed `f/x: --output: f/x is under a file`,
// the path in the `file: field:` prefix and again in the message). Every code the operand checks raise, from the
// real checks where this machine can make the case and from every errno fsError maps (OPERAND_ERRNOS).

const root = fileURLToPath(new URL("../../..", import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "loraspec-operand-once-"));
  await writeFile(join(dir, "plain.safetensors"), "x");
  await mkdir(join(dir, "folder.safetensors"));
  spawnSync("mkfifo", [join(dir, "fifo.safetensors")]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The line printError writes for `error` (its first line: the hint follows on the next). */
function printed(error: unknown): string {
  let out = "";
  const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: unknown) => ((out += String(chunk)), true));
  try {
    printError(error);
  } finally {
    spy.mockRestore();
  }
  return out.split("\n")[0]!;
}

const count = (text: string, part: string) => text.split(part).length - 1;

async function caught(p: Promise<unknown>): Promise<LoraspecError> {
  const error = await p.then(() => undefined, (e: unknown) => e);
  expect(isLoraspecError(error), String(error)).toBe(true);
  return error as LoraspecError;
}

describe("operand errors name the path once", () => {
  const p = (name: string) => join(dir, name);
  // [case, the check, the path it is given, the code]
  const real: Array<[string, () => Promise<void>, () => string, string]> = [
    ["input missing", () => fsOperands.checkInputFile(p("nope-input.safetensors"), "<file>"), () => p("nope-input.safetensors"), "E_FILE_NOT_FOUND"],
    ["input under a file", () => fsOperands.checkInputFile(p("plain.safetensors/in.safetensors"), "input 2"), () => p("plain.safetensors/in.safetensors"), "E_FILE_NOT_FOUND"],
    ["input a folder", () => loraOperands.checkInputFile(p("folder.safetensors"), "<file>"), () => p("folder.safetensors"), "E_USAGE"],
    ["input a FIFO", () => loraOperands.checkInputFile(p("fifo.safetensors"), "<file>"), () => p("fifo.safetensors"), "E_USAGE"],
    ["input a device", () => fsOperands.checkInputFile("/dev/null", "<file>"), () => "/dev/null", "E_USAGE"],
    ["output a folder", () => loraOperands.checkOutputFile(p("folder.safetensors"), "--output"), () => p("folder.safetensors"), "E_USAGE"],
    ["output ending in /", () => fsOperands.checkOutputFile(p("made/"), "--output"), () => p("made/"), "E_USAGE"],
    ["output under a file", () => loraOperands.checkOutputFile(p("plain.safetensors/out.safetensors"), "--output"), () => p("plain.safetensors/out.safetensors"), "E_USAGE"],
    ["output a FIFO", () => fsOperands.checkOutputFile(p("fifo.safetensors"), "--out"), () => p("fifo.safetensors"), "E_USAGE"],
  ];
  it.each(real)("%s", async (_, check, path, code) => {
    const error = await caught(check());
    expect(error.code).toBe(code);
    const line = printed(error);
    expect(count(line, path()), line).toBe(1);
    expect(count(line, `${error.field!}:`), line).toBe(1);
  });

  it("an empty name names the option once", async () => {
    const line = printed(await caught(fsOperands.checkInputFile("", "--lora")));
    expect(count(line, "--lora"), line).toBe(1);
  });

  // Each errno fsError maps, as Node raises it (its message names the path too: "EROFS: ..., open '/x'").
  it.each(fsOperands.OPERAND_ERRNOS.map((errno) => [errno]))("%s from the file system", (errno) => {
    const path = join(dir, `sub ${errno}`, "out.safetensors");
    const raw = Object.assign(new Error(`${errno}: refused, open '${path}'`), { code: errno, errno: -1, syscall: "open", path });
    const error = fsOperands.fsError(raw, path, "--output", ".safetensors file");
    expect(error, errno).toBeDefined();
    const line = printed(error);
    expect(count(line, path), line).toBe(1);
    expect(count(line, "--output"), line).toBe(1);
  });

  it("the codes walked are every code the operand checks raise", () => {
    const codes = new Set(fsOperands.OPERAND_ERRNOS.map((errno) => fsOperands.fsError(Object.assign(new Error(errno), { code: errno }), "/x", "f")!.code));
    expect([...codes].sort()).toEqual(["E_DISK_FULL", "E_FILE_NOT_FOUND", "E_IO", "E_USAGE"]);
  });

  it("the built CLI prints the path once (main's printer)", () => {
    const bin = join(root, "bin", "loraspec.mjs");
    for (const args of [["inspect", "nope-cli.safetensors"], ["convert", "plain.safetensors", "--to", "kohya", "-o", "plain.safetensors/x.safetensors"], ["inspect", "folder.safetensors"]]) {
      const r = spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", CI: "1" } });
      const line = r.stderr.split("\n").find((l) => l.startsWith("error"))!;
      const path = args[0] === "convert" ? args.at(-1)! : args[1]!;
      expect(count(line, path), line).toBe(1);
    }
  }, 60_000);
});
