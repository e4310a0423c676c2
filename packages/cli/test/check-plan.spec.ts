import { spawnSync } from "node:child_process";
import { cp, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = join(root, "bin", "loraspec.mjs");

function run(args: string[], cwd = root, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: "utf8", env: { ...process.env, NO_COLOR: "1", FAL_KEY: "", ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraspec-cli-"));
  await cp(join(root, "examples", "character"), join(tmp, "project"), { recursive: true });
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

const noStack = (s: string) => expect(s).not.toMatch(/^\s+at /m);

describe("loraspec check", () => {
  it("exits 0 on the good example", () => {
    const r = run(["check", "examples/character/lora.yaml"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/✓ examples\/character\/lora.yaml: 20 images; 0 error\(s\)/);
  });

  it("reads ./lora.yaml by default", () => {
    expect(run(["check"], join(tmp, "project")).code).toBe(0);
  });

  it("prints the rule, its fix and its source for a pitfall", () => {
    const human = run(["check", "examples/pitfalls/lr-sdxl-on-flux.yaml"]);
    expect(human.code).toBe(1);
    expect(human.stdout).toContain("error lr-sdxl-on-flux");
    expect(human.stdout).toMatch(/fix: /);
    expect(human.stdout).toMatch(/source: /);
  });

  it.each([
    ["bad YAML", (t: string) => t.replace("target: character", "target: [character"), "E_YAML_SYNTAX", /lora\.yaml:\d+: YAML syntax/],
    ["unknown base model", (t: string) => t.replace("model: flux1-dev", "model: flux3-pro"), "E_UNKNOWN_BASE_MODEL", /lora\.yaml:7: base\.model: got 'flux3-pro', expected one of sdxl/],
    ["missing dataset folder", (t: string) => t.replace("path: ./dataset", "path: ./photos"), "E_DATASET_NOT_FOUND", /lora\.yaml: dataset\.path: dataset folder '\.\/photos' does not exist/],
    ["misspelled field", (t: string) => t.replace("save_every: 250", "save_evry: 250"), "E_CONTRACT_INVALID", /hyperparameters\.save_evry: unknown field/],
  ])("%s -> one clear error, exit 2, no stack", async (_name, edit, code, where) => {
    const dir = await mkdtemp(join(tmp, "case-"));
    const { readFile } = await import("node:fs/promises");
    const text = await readFile(join(root, "examples", "character", "lora.yaml"), "utf8");
    await writeFile(join(dir, "lora.yaml"), edit(text));
    await cp(join(root, "examples", "character", "dataset"), join(dir, "dataset"), { recursive: true });
    const r = run(["check"], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`[${code}]`);
    expect(r.stderr).toMatch(where);
    expect(r.stderr).toMatch(/fix: /);
    noStack(r.stderr);
  });

  it("an unreadable image is a finding naming the file, and every other finding still shows", async () => {
    const dir = join(tmp, "project");
    await writeFile(join(dir, "dataset", "zz_broken.png"), "this is not an image");
    try {
      const r = run(["check", "--json"], dir);
      noStack(r.stderr);
      const out = JSON.parse(r.stdout);
      expect(out.findings.find((f: { rule: string }) => f.rule === "dataset-skipped")).toMatchObject({ severity: "warning", files: ["zz_broken.png"] });
      expect(out.images).toBe(20);
    } finally {
      await rm(join(dir, "dataset", "zz_broken.png"));
    }
  });

  it("a missing contract -> E_CONTRACT_NOT_FOUND, exit 2", () => {
    const r = run(["check", "nope.yaml"], tmp);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\[E_CONTRACT_NOT_FOUND\] nope\.yaml/);
  });

  it("a 3 GB lora.yaml (sparse) -> E_FILE_TOO_LARGE naming it, exit 2, unread", async () => {
    await writeFile(join(tmp, "huge.yaml"), "version: 1\n");
    await truncate(join(tmp, "huge.yaml"), 3 * 1024 ** 3);
    for (const command of ["check", "plan"]) {
      const r = run([command, "huge.yaml"], tmp);
      expect([command, r.code]).toEqual([command, 2]);
      expect(r.stderr).toMatch(/\[E_FILE_TOO_LARGE\] huge\.yaml is 3\.0 GiB, more than a contract can be \(at most 1\.0 MiB\); it was not read/);
      noStack(r.stderr);
    }
  });
});

describe("loraspec plan", () => {
  it("prints the plan table", () => {
    const r = run(["plan", "examples/character/lora.yaml"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/steps\s+2000/);
    expect(r.stdout).toMatch(/VRAM \(peak\)\s+~\d+(\.\d)? GB/);
    // ordered by the one walltime model: the H200 fastest, the RTX 3060 slowest
    const hours = (label: string) => Number(new RegExp(`${label}\\s+[\\d.]+\\s+([\\d.]+)`).exec(r.stdout)?.[1]);
    expect(hours("H200 141GB")).toBeLessThan(hours("H100 80GB"));
    expect(hours("H100 80GB")).toBeLessThan(hours("RTX 4090 24GB"));
    expect(hours("RTX 4090 24GB")).toBeLessThan(hours("RTX 3060 12GB"));
    // the walltime's parts, each with why (ai-toolkit: load, steps, samples; what is not measured is said)
    expect(r.stdout).toMatch(/^\s+load\s+[\d.]+ s \([\d.]+ GB of bf16 weights read at [\d.]+ GB\/s \(estimate, not measured/m);
    expect(r.stdout).toMatch(/^\s+steps\s+[\d.]+ s \(2000 steps x /m);
    expect(r.stdout).toMatch(/^\s+left out\s+ai-toolkit's start-up, caching and checkpoint saves are not measured/m);
  });

  it("--json has the resolved numbers", () => {
    const r = run(["plan", "--json", "examples/character/lora.yaml"]);
    const { plan } = JSON.parse(r.stdout) as { plan: { steps: number; repeats: number; epochs: number; learningRate: number; cost: { usd: number }; vram: { totalGb: number } } };
    expect(plan.steps).toBe(2000);
    expect(plan.repeats * plan.epochs * 20).toBe(plan.steps); // 20 images, batch 1
    expect(plan.learningRate).toBe(1e-4);
    expect(plan.cost.usd).toBeGreaterThan(1);
    expect(plan.vram.totalGb).toBeLessThanOrEqual(24);
  });
});
