import { spawn, spawnSync } from "node:child_process";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registrations } from "../src/commands/index.js";
import { buildLora } from "../../engine/test/lora/helpers.js";

// The README promises --json on every command: stdout is JSON lines only, the last one the command's result
// (or `{ok: false, error: {code, ...}}`), text goes to stderr. The commands come from the CLI's own registry,
// so a command added without --json, or without a row here, fails this test.

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");
let tmp: string;
const env = () => ({ ...process.env, NO_COLOR: "1", CI: "1", LORASPEC_CACHE_DIR: join(tmp, "cache"), OMP_NUM_THREADS: "1" });
const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args, "--json"], { cwd: tmp, encoding: "utf8", env: env(), timeout: 120_000 });

function registered(): Command[] {
  const program = new Command("loraspec");
  for (const register of registrations) register(program);
  const all: Command[] = [];
  const walk = (c: Command) => c.commands.forEach((sub) => (all.push(sub), walk(sub)));
  walk(program);
  return all;
}

/** stdout is JSON lines only (at least one), and the last one is a JSON object: the command's one document. */
function lastDocument(stdout: string): Record<string, unknown> {
  const lines = stdout.split("\n").filter((l) => l.trim() !== "");
  expect(lines.length, "no JSON on stdout").toBeGreaterThan(0);
  for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
  const last = JSON.parse(lines.at(-1)!) as unknown;
  expect(typeof last === "object" && last !== null && !Array.isArray(last), lines.at(-1)).toBe(true);
  return last as Record<string, unknown>;
}

interface Row {
  /** A run that succeeds (or finishes with findings): its last line is the result, not an error. Left out where
   * success needs a GPU, a model or the network (train, sample, validate, caption, setup): the error row stands. */
  ok?: { args: string[]; has: string };
  /** A run it must refuse: the last line is the coded error. */
  error: { args: string[]; code: string };
}

const rows: Record<string, Row> = {
  init: { ok: { args: ["init", "--base", "sdxl", "--target", "character", "--trigger", "txcl", "--gpu", "RTX 4090", "-o", "made.yaml"], has: "choices" }, error: { args: ["init", "--base", "nope", "--target", "character", "--trigger", "txcl"], code: "E_UNKNOWN_BASE_MODEL" } },
  check: { ok: { args: ["check", "proj/lora.yaml"], has: "findings" }, error: { args: ["check", "nope.yaml"], code: "E_CONTRACT_NOT_FOUND" } },
  plan: { ok: { args: ["plan", "proj/lora.yaml"], has: "steps" }, error: { args: ["plan", "nope.yaml"], code: "E_CONTRACT_NOT_FOUND" } },
  prep: { error: { args: ["prep", "--dataset", "nope", "--resolution", "512"], code: "E_DATASET_NOT_FOUND" } },
  caption: { error: { args: ["caption", "nope.yaml"], code: "E_CONTRACT_NOT_FOUND" } },
  sample: { error: { args: ["sample", "--lora", "nope.safetensors", "--prompt", "x", "--base", "./nope"], code: "E_FILE_NOT_FOUND" } },
  train: { error: { args: ["train", "nope.yaml"], code: "E_CONTRACT_NOT_FOUND" } },
  runs: { ok: { args: ["runs"], has: "runs" }, error: { args: ["runs", "--bogus"], code: "E_USAGE" } },
  logs: { error: { args: ["logs", "no-such-run"], code: "E_RUN_NOT_FOUND" } },
  stop: { error: { args: ["stop", "no-such-run"], code: "E_RUN_NOT_FOUND" } },
  ui: { ok: { args: ["ui", "--port", "0", "--no-open"], has: "url" }, error: { args: ["ui", "--port", "x"], code: "E_USAGE" } },
  inspect: { ok: { args: ["inspect", "a.safetensors"], has: "format" }, error: { args: ["inspect", "nope.safetensors"], code: "E_FILE_NOT_FOUND" } },
  convert: { ok: { args: ["convert", "a.safetensors", "--to", "diffusers", "-o", "c.safetensors"], has: "output" }, error: { args: ["convert", "nope.safetensors", "--to", "kohya"], code: "E_FILE_NOT_FOUND" } },
  merge: { ok: { args: ["merge", "a.safetensors:0.5", "b.safetensors:0.5", "-o", "m.safetensors"], has: "output" }, error: { args: ["merge", "nope.safetensors:0.5", "a.safetensors:0.5", "-o", "m2.safetensors"], code: "E_FILE_NOT_FOUND" } },
  setup: { error: { args: ["setup", "nope"], code: "E_USAGE" } },
  validate: { error: { args: ["validate", "nope.yaml", "--lora", "a.safetensors"], code: "E_CONTRACT_NOT_FOUND" } },
  "export-script": { ok: { args: ["export-script", "proj/lora.yaml", "--lora", "a.safetensors", "-o", "v.py"], has: "path" }, error: { args: ["export-script", "proj/lora.yaml", "--lora", "nope.safetensors"], code: "E_FILE_NOT_FOUND" } },
  doctor: { ok: { args: ["doctor"], has: "items" }, error: { args: ["doctor", "--bogus"], code: "E_USAGE" } },
};

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-json-all-"));
  await cp(join(root, "examples", "character"), join(tmp, "proj"), { recursive: true });
  const pick = (m: { native: string }) => m.native === "img_in";
  await buildLora({ path: join(tmp, "a.safetensors"), arch: "flux1", format: "kohya", pick, rank: 2 });
  await buildLora({ path: join(tmp, "b.safetensors"), arch: "flux1", format: "kohya", pick, rank: 2, seed: 2 });
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("--json on every registered command", () => {
  const commands = registered();

  it("the registry's commands all have a row here and take --json", () => {
    const names = commands.map((c) => c.name());
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((n) => !rows[n]), "commands with no row in this table").toEqual([]);
    expect(names.filter((n) => !commands.find((c) => c.name() === n)!.options.some((o) => o.long === "--json")), "commands without --json").toEqual([]);
  });

  it.each(Object.keys(rows))("%s --json: a refusal is one coded error document", (name) => {
    const r = run(rows[name]!.error.args);
    expect(lastDocument(r.stdout)).toMatchObject({ ok: false, error: { code: rows[name]!.error.code } });
    expect(r.status).not.toBe(0);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  }, 120_000);

  it.each(Object.keys(rows).filter((n) => rows[n]!.ok && n !== "ui"))("%s --json: its result is a JSON document", (name) => {
    const row = rows[name]!.ok!;
    const r = run(row.args);
    const doc = lastDocument(r.stdout);
    expect(doc.ok, JSON.stringify(doc).slice(0, 400)).not.toBe(false);
    expect(JSON.stringify(doc)).toContain(`"${row.has}"`);
    expect([0, 1]).toContain(r.status);
  }, 120_000);

  it("ui --json: the address is one JSON line", async () => {
    const child = spawn(process.execPath, [bin, ...rows.ui!.ok!.args, "--json", "--project", tmp], { cwd: tmp, env: env() });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (d: Buffer) => {
          out += String(d);
          if (out.includes("\n")) resolve(out.split("\n")[0]!);
        });
        child.on("close", (code) => reject(new Error(`ui exited ${code} before printing: ${out}`)));
      });
      expect(JSON.parse(line)).toMatchObject({ ok: true, url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+/) });
    } finally {
      child.kill("SIGTERM");
    }
  }, 60_000);
});

describe("init --json", () => {
  it("names the contract written and each choice with its value, reason and source", () => {
    const r = run(["init", "--base", "flux1-dev", "--target", "style", "--trigger", "zqvx", "--gpu", "RTX 4090", "-o", "style.yaml"]);
    expect(r.status).toBe(0);
    const doc = lastDocument(r.stdout);
    expect(doc).toMatchObject({ ok: true, path: "style.yaml", file: join(tmp, "style.yaml") });
    const choices = doc.choices as Array<{ field: string; value: unknown; why: string; source: string }>;
    expect(choices.find((c) => c.field === "base.model")).toMatchObject({ value: "flux1-dev", why: expect.any(String), source: expect.any(String) });
    expect(choices.find((c) => c.field === "hyperparameters.steps")?.value).toEqual(expect.any(Number));
    for (const c of choices) expect(c.why.length * c.source.length, c.field).toBeGreaterThan(0);
  }, 60_000);
});
