import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseLoraArg } from "../src/commands/sample.js";
import { sampleImagePaths } from "@loraspec/engine/lora/sample-outputs.js";
import { findWorkerRoot, workerPython } from "@loraspec/engine/worker/worker-paths.js";
import { tempDirsPerFile } from "../../engine/test/test-helpers.js";

/** Temp folders, removed when this file's tests are done. */
const tempDir = tempDirsPerFile("loraspec-cli-sample-out-");

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
const python = workerPython(findWorkerRoot());

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, NO_COLOR: "1", CI: "1", OMP_NUM_THREADS: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("parseLoraArg", () => {
  it.each([
    ["a.safetensors", "a.safetensors", 1],
    ["a.safetensors:0.8", "a.safetensors", 0.8],
    ["dir/b.safetensors:-0.5", "dir/b.safetensors", -0.5],
    ["C:\\loras\\c.safetensors", "C:\\loras\\c.safetensors", 1],
    ["C:\\loras\\c.safetensors:1.2", "C:\\loras\\c.safetensors", 1.2],
    ["weird:name.safetensors", "weird:name.safetensors", 1],
  ])("%s -> %s at %s", (arg, path, weight) => {
    expect(parseLoraArg(arg)).toEqual({ path, weight });
  });
});

const SENTINEL = "the user's own file";

describe("loraspec sample never replaces existing images unless --force", () => {
  it("refuses before the worker starts, names the first existing file, leaves the folder alone", async () => {
    const out = tempDir();
    await writeFile(join(out, "01-7.png"), SENTINEL);
    await writeFile(join(out, "other.png"), SENTINEL);
    // Base "x" does not exist: reaching the worker would be another error (E_FILE_NOT_FOUND / setup).
    const args = [bin, "sample", "--base", "x", "--prompt", "p0", "--prompt", "p1", "--seed", "3", "--seed", "7", "--out", out];
    const r = await run(process.execPath, args);
    expect([r.code, r.stderr]).toEqual([2, expect.stringContaining("E_FILE_EXISTS")]);
    expect(r.stderr).toContain(join(out, "01-7.png"));
    expect(r.stderr).toContain("--force");
    expect(await readFile(join(out, "01-7.png"), "utf8")).toBe(SENTINEL);
    expect(await readFile(join(out, "other.png"), "utf8")).toBe(SENTINEL);
    // Files it would not write, and an existing folder, are no reason to refuse.
    const other = await run(process.execPath, [bin, "sample", "--base", "x", "--prompt", "p0", "--seed", "7", "--out", out, "--json"]);
    expect(other.stderr).not.toContain("E_FILE_EXISTS");
  });

  it("names the images prompt index x seed, in render order, each once", async () => {
    const dir = join(tempDir("loraspec-sample-names-"), "s");
    await mkdir(dir);
    expect(sampleImagePaths(dir, 2, [5, 1, 5])).toEqual(["00-5.png", "00-1.png", "01-5.png", "01-1.png"].map((f) => join(dir, f)));
  });
});

describe.skipIf(!existsSync(python))("loraspec sample", () => {
  it("renders prompts x seeds from a tiny base through the worker", async () => {
    const dir = tempDir("loraspec-cli-sample-");
    const base = join(dir, "base");
    const made = await run(python, ["-m", "loraspec_worker", "make-tiny-base", "--arch", "sdxl", "--out", base]);
    expect(made.code).toBe(0);
    const out = join(dir, "samples");
    const r = await run(process.execPath, [bin, "sample", "--base", base, "--prompt", "a photo of txcl", "--seed", "1", "--seed", "2", "--steps", "2", "--width", "32", "--height", "32", "--out", out, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf("\n{") + 1)) as { images: { path: string; seed: number }[] };
    expect(result.images.map((i) => i.seed)).toEqual([1, 2]);
    for (const image of result.images) expect(existsSync(image.path)).toBe(true);
    // The worker names the files; the CLI's refusal predicts the same names.
    expect(result.images.map((i) => i.path)).toEqual(sampleImagePaths(out, 1, [1, 2]));

    // A second run into the same folder refuses before rendering; --force replaces only its own images.
    await writeFile(join(out, "notes.txt"), SENTINEL);
    const before = await stat(join(out, "00-1.png"));
    const again = [bin, "sample", "--base", base, "--prompt", "a photo of txcl", "--seed", "2", "--seed", "1", "--steps", "2", "--width", "32", "--height", "32", "--out", out];
    const refused = await run(process.execPath, again);
    expect([refused.code, refused.stderr]).toEqual([2, expect.stringContaining("E_FILE_EXISTS")]);
    expect(refused.stderr).toContain(join(out, "00-2.png"));
    expect((await stat(join(out, "00-1.png"))).mtimeMs).toBe(before.mtimeMs);
    const forced = await run(process.execPath, [...again, "--force"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect((await stat(join(out, "00-1.png"))).mtimeMs).toBeGreaterThan(before.mtimeMs);
    expect(await readFile(join(out, "notes.txt"), "utf8")).toBe(SENTINEL);
  });

  it("a missing LoRA file is a usage error before the worker starts", async () => {
    const r = await run(process.execPath, [bin, "sample", "--base", "x", "--lora", "/nonexistent.safetensors:0.5", "--prompt", "p"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("E_FILE_NOT_FOUND");
  });
});
