import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { atomicWrite } from "@loraspec/engine/fs/atomic-write.js";

// Every command that writes a file the user names through atomicWrite (init -o, export-script -o, and
// whatever else writes with it) answered a folder, a path under a file or an empty name with "internal
// error (a bug in loraspec...)" and a Node stack (EISDIR on rename, EEXIST/ENOTDIR on mkdir), and
// `export-script -o lora.yaml --force` replaced the contract it had just read with Python.
const bin = join(fileURLToPath(new URL("../../../..", import.meta.url)), "bin", "loraspec.mjs");
let dir: string;
const tree = () => readdirSync(dir, { recursive: true }).map(String).sort();

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "loraspec-out-paths-"));
  mkdirSync(join(dir, "dataset"));
  mkdirSync(join(dir, "afolder"));
  writeFileSync(join(dir, "afolder", "keep.txt"), "x");
  writeFileSync(join(dir, "lora.safetensors"), "not really");
  writeFileSync(join(dir, "lora.yaml"), "version: 1\nname: t\nbase: { model: sdxl }\ntrainer: { name: diffusers }\ntarget: character\ndataset: { path: ./dataset }\ntrigger: { word: txcl }\n");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("atomicWrite: a path that cannot be a file is a coded error, nothing left behind", () => {
  it.each([
    ["an existing folder", () => join(dir, "afolder"), "E_USAGE", /is a folder/],
    ["a path under a file", () => join(dir, "lora.yaml", "x.txt"), "E_USAGE", /under a file/],
    ["an empty name", () => "", "E_USAGE", /empty name/],
  ])("%s", async (_n, path, code, message) => {
    const before = tree();
    const error = await atomicWrite(path(), "data").then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code, message: expect.stringMatching(message) });
    expect(tree()).toEqual(before);
  });
});

const cli = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", CI: "1" } });
const INIT = ["init", "--base", "sdxl", "--target", "character", "--trigger", "txcl", "--trainer", "diffusers", "--gpu", "RTX 4090"];
const EXPORT = ["export-script", "--lora", "lora.safetensors"];

describe("commands with -o: coded errors, never a stack, nothing of the user's replaced", () => {
  it.each<[string, string[]]>([
    ["init -o a path under a file", [...INIT, "-o", "lora.yaml/x.yaml", "--force"]],
    ["init -o an empty name", [...INIT, "-o", ""]],
    ["export-script -o a folder --force", [...EXPORT, "-o", "afolder", "--force"]],
    ["export-script -o the contract it reads --force", [...EXPORT, "-o", "lora.yaml", "--force"]],
    ["export-script -o the LoRA it reads --force", [...EXPORT, "-o", "lora.safetensors", "--force"]],
    ["export-script -o a path under a file", [...EXPORT, "-o", "lora.yaml/v.py"]],
  ])("%s", (_n, args) => {
    const contract = readFileSync(join(dir, "lora.yaml"), "utf8");
    const before = tree();
    const r = cli(args);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^error \[E_USAGE\]/m);
    expect(r.stderr).not.toMatch(/internal error|^\s+at /m);
    expect(tree()).toEqual(before);
    expect(readFileSync(join(dir, "lora.yaml"), "utf8")).toBe(contract);
  });

  it("init -o naming a folder writes lora.yaml inside it and says so", () => {
    const r = cli([...INIT, "-o", "proj/"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^wrote proj\/lora\.yaml: /m);
    expect(readdirSync(join(dir, "proj"))).toEqual(["lora.yaml"]);
  });
});
