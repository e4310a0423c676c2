import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-json-"));
  await writeFile(join(tmp, "notes.txt"), "not a dataset");
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: tmp, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", CI: "1" } });

// Every command, given input it must refuse: with --json, stdout holds only JSON lines and the
// last one is the error object; nothing is a stack trace.
describe("--json on every command", () => {
  it.each<[string, string[], string]>([
    ["check", ["check", "nope.yaml"], "E_CONTRACT_NOT_FOUND"],
    ["plan", ["plan", "nope.yaml"], "E_CONTRACT_NOT_FOUND"],
    ["prep (dataset is a file)", ["prep", "--dataset", "notes.txt", "--resolution", "512"], "E_DATASET_NOT_FOUND"],
    ["prep (bad option value)", ["prep", "--dataset", ".", "--resolution", "-3"], "E_USAGE"],
    ["prep (unknown option)", ["prep", "--bogus"], "E_USAGE"],
    ["caption (no contract)", ["caption", "nope.yaml"], "E_CONTRACT_NOT_FOUND"],
    ["inspect", ["inspect", "nope.safetensors"], "E_FILE_NOT_FOUND"],
    ["convert", ["convert", "nope.safetensors", "--to", "kohya"], "E_FILE_NOT_FOUND"],
    ["stop", ["stop", "no-such-run"], "E_RUN_NOT_FOUND"],
    // logs prints the trainer's own log; with --json as a JSON string (a missing run is a JSON error, not text).
    ["logs", ["logs", "no-such-run"], "E_RUN_NOT_FOUND"],
  ])("%s", (_, args, code) => {
    const r = run([...args, "--json"]);
    const lines = r.stdout.split("\n").filter((l) => l.trim() !== "");
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ ok: false, error: { code } });
    expect(r.status).not.toBe(0);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it("a command's text output goes to stderr, its JSON to stdout", () => {
    const r = run(["runs", "--json"]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ runs: [] });
  });
});
