import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { exportValidationScript, type ExportScriptParams } from "@loraspec/core/validate/export-script.js";

const python = fileURLToPath(new URL("../../../../worker/.venv/bin/python", import.meta.url));

const params: ExportScriptParams = {
  name: "txcl-character",
  base: "stabilityai/stable-diffusion-xl-base-1.0",
  lora: "/loras/txcl.safetensors",
  trigger: "txcl",
  target: "character",
  rubric: {
    seeds: [1, 2],
    trigger_prompts: ['a photo of {trigger}, sign says """hi""" \\ C:\\path'],
    pose_variations: 10,
    novel_scenes: ["{trigger} on the moon"],
    stack: [{ lora: "/loras/style.safetensors", weight: 0.6 }],
    self_weight: 0.5,
    weight_sweep: [0.6, 0.8, 1.0],
  },
  width: 1024,
  height: 1024,
  steps: 28,
  date: "2026-11-29",
};

/** Parses the script with Python and returns its CONFIG (the script is not run). */
function configOf(script: string): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), "loraspec-export-"));
  try {
    const file = join(dir, "validate.py");
    writeFileSync(file, script);
    const code = [
      "import ast, json, sys",
      "tree = ast.parse(open(sys.argv[1]).read())",
      "node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == 'CONFIG')",
      "print(json.dumps(json.loads(node.value.args[0].value)))",
    ].join("\n");
    return JSON.parse(execFileSync(python, ["-c", code, file], { encoding: "utf8" }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("exportValidationScript", () => {
  const script = exportValidationScript(params);

  it("is valid Python whose CONFIG round-trips prompts with quotes and backslashes", () => {
    const config = configOf(script);
    expect(config.trigger_pairs).toEqual([
      { with: 'a photo of txcl, sign says """hi""" \\ C:\\path', without: 'a photo of, sign says """hi""" \\ C:\\path' },
    ]);
    expect(config.weight_sweep).toEqual([0.6, 0.8, 1.0]);
    expect(config.stack).toEqual([{ name: "style", path: "/loras/style.safetensors", weight: 0.6 }]);
    expect((config.variations as string[]).length).toBe(10);
  });

  it.each([
    ["over 1.0", 0.6, true],
    ["at most 1.0", 0.3, false],
  ])("notes a stack weight %s", (_t, weight, note) => {
    const s = exportValidationScript({ ...params, rubric: { ...params.rubric, stack: [{ lora: "/l/s.safetensors", weight }] } });
    expect(s.includes("add up to")).toBe(note);
  });

  it("names every check's failure symptom", () => {
    for (const s of ["no visible difference", "without-trigger images too", "mode collapse", "original photos' backgrounds", "disappears", "Weight sweep"]) expect(script).toContain(s);
  });
});
