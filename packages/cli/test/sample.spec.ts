import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseLoraArg } from "../src/commands/sample.js";
import { findWorkerRoot, workerPython } from "@loraspec/engine/worker/worker-paths.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
const python = workerPython(findWorkerRoot());

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, NO_COLOR: "1", CI: "1" } });
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

describe.skipIf(!existsSync(python))("loraspec sample", () => {
  it("renders prompts x seeds from a tiny base through the worker", async () => {
    const dir = await mkdtemp(join(tmpdir(), "loraspec-cli-sample-"));
    const base = join(dir, "base");
    const made = await run(python, ["-m", "loraspec_worker", "make-tiny-base", "--arch", "sdxl", "--out", base]);
    expect(made.code).toBe(0);
    const out = join(dir, "samples");
    const r = await run(process.execPath, [bin, "sample", "--base", base, "--prompt", "a photo of txcl", "--seed", "1", "--seed", "2", "--steps", "2", "--width", "32", "--height", "32", "--out", out, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf("\n{") + 1)) as { images: { path: string; seed: number }[] };
    expect(result.images.map((i) => i.seed)).toEqual([1, 2]);
    for (const image of result.images) expect(existsSync(image.path)).toBe(true);
  });

  it("a missing LoRA file is a usage error before the worker starts", async () => {
    const r = await run(process.execPath, [bin, "sample", "--base", "x", "--lora", "/nonexistent.safetensors:0.5", "--prompt", "p"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("E_FILE_NOT_FOUND");
  });
});
