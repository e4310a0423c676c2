import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The CLI as a user runs it (dist/cli.mjs, built by vitest's global setup), on fixtures made by
// make_fixtures.py: `loraspec export-script` then the exported script in the worker venv, and
// `loraspec validate` on a tiny SDXL base with a tiny CLIP scorer.
const repo = fileURLToPath(new URL("../../../../", import.meta.url));
const python = join(repo, "worker/.venv/bin/python");
const cli = join(repo, "bin/loraspec.mjs");
const SLOW = 400_000;
let fx: string;

function loraspec(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { cwd: fx, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", CI: "1" }, timeout: SLOW });
}

beforeAll(() => {
  fx = mkdtempSync(join(tmpdir(), "loraspec-cli-validate-"));
  execFileSync(python, [join(repo, "packages/engine/test/validate/make_fixtures.py"), fx], { env: { ...process.env, PYTHONPATH: join(repo, "worker") }, stdio: "pipe" });
  const contract = {
    version: 1,
    name: "txcl-test",
    base: { model: "sdxl", path: "./base" },
    trainer: { name: "diffusers" },
    target: "character",
    dataset: { path: "./dataset" },
    trigger: { word: "txcl" },
    validation: {
      seeds: [1],
      trigger_prompts: ["a photo of {trigger}"],
      pose_variations: 2,
      novel_scenes: ["{trigger} on the moon"],
      stack: [{ lora: "./style_kohya.safetensors", weight: 0.3 }],
      self_weight: 0.5,
      weight_sweep: [0.6, 1.0],
    },
  };
  writeFileSync(join(fx, "lora.yaml"), stringify(contract));
});
afterAll(() => rmSync(fx, { recursive: true, force: true }));

describe("loraspec export-script", () => {
  it("writes a readable script that renders the rubric against a tiny base", () => {
    const r = loraspec(["export-script", "--lora", "rand_kohya.safetensors", "-o", "validate.py"]);
    expect(r.status, r.stderr).toBe(0);
    const script = readFileSync(join(fx, "validate.py"), "utf8");
    for (const needle of ["load_lora_weights", "set_adapters", "disable_lora", "FAILURE: no visible difference", "mode collapse", "weight_sweep"]) expect(script).toContain(needle);
    expect(loraspec(["export-script", "--lora", "rand_kohya.safetensors", "-o", "validate.py"]).status).toBe(2); // E_FILE_EXISTS
    const run = spawnSync(python, ["validate.py", "--device", "cpu", "--steps", "2", "--width", "32", "--height", "32", "--out", "v"], { cwd: fx, encoding: "utf8", timeout: SLOW });
    expect(run.status, run.stderr.slice(-2000)).toBe(0);
    const files = readdirSync(join(fx, "v"));
    // 2 weights x 1 prompt x 1 seed x (on, off) + base pair + 2 variations + 1 scene + stack (1 + 2 alone) + 4 sheets
    expect(files.filter((f) => f.startsWith("trigger_"))).toHaveLength(4);
    expect(files.filter((f) => f.startsWith("sheet_")).sort()).toEqual([
      "sheet_1_trigger_and_5_sweep.png",
      "sheet_2_variations.png",
      "sheet_3_scenes.png",
      "sheet_4_stack.png",
    ]);
    expect(files).toContain("stack_p0_s1_style_kohya_alone.png");
  }, SLOW);
});

describe("loraspec validate", () => {
  it("usage mistakes exit 2 with one clear line", () => {
    const r = loraspec(["validate"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("E_USAGE");
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(loraspec(["validate", "--lora", "missing.safetensors"]).stderr).toContain("E_FILE_NOT_FOUND");
  });

  it("an untrained LoRA: --json verdicts, exit 1, report written", () => {
    const r = loraspec(["validate", "--lora", "zero.safetensors", "--width", "32", "--height", "32", "--steps", "2", "--device", "cpu", "--score-model", "./clip", "--json"]);
    expect(r.status, r.stderr.slice(-2000)).toBe(1);
    const lines = r.stdout.trim().split("\n");
    const events = lines.filter((l) => l.startsWith('{"type"')).map((l) => JSON.parse(l));
    expect(events.some((e) => e.type === "sample")).toBe(true);
    // --json: one JSON object per line, the summary last.
    const summary = JSON.parse(lines.at(-1)!);
    expect(summary.status).toBe("fail");
    expect(summary.weights.map((w: { weight: number; checks: { trigger: string } }) => [w.weight, w.checks.trigger])).toEqual([[0.6, "fail"], [1, "fail"]]);
    expect(summary.stack).toBeDefined();
    // --json carries the numbers behind each verdict, with thresholds and sources.
    const measure = summary.verdicts.weights[0].checks[0].measures[0];
    expect(measure).toMatchObject({ id: "trigger_effect", status: "fail", pass: expect.any(Number), source: expect.any(String) });
    expect(measure.value).toBeCloseTo(0, 6);
    expect(existsSync(summary.report)).toBe(true);
    expect(summary.report).toBe(join(fx, ".loraspec", "validations", "zero", "report.html"));
  }, SLOW);
});
