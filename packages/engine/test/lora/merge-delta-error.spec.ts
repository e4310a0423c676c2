import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collectEvents } from "@loraspec/core/events.js";
import { MERGE_DELTA_ERROR } from "@loraspec/core/knowledge/merge-delta-error.js";
import { mergeLora, type MergeMethod } from "@loraspec/engine/lora/merge-lora.js";
import { measureDeltaError } from "@loraspec/engine/lora/delta-error.js";
import { openSafetensors } from "@loraspec/engine/lora/safetensors-file.js";
import { parseLora } from "@loraspec/core/lora/parse-lora.js";
import { readAlphas } from "@loraspec/engine/lora/inspect-lora.js";
import { buildLora, HAS_PYTHON, oracle, REPO, tempDir } from "./helpers.js";

// merge reports how far its delta is from the exact weighted sum sum_i w_i (alpha_i / r_i) up_i down_i, measured on the
// file written (lora/delta-error.ts, in the low-rank space), and warns W_MERGE_DELTA_ERROR above the knowledge record's
// threshold. peft's `linear` combines A and B separately, so two LoRAs with different directions get cross terms: its
// error is large and equals numpy's, formed from dense deltas (worker/tests/oracle/merge_delta_error.py); cat's is ~0.

const pick = (m: { native: string }) => /^double_blocks\.0\.img_attn/.test(m.native) || m.native === "final_layer.adaLN_modulation.1";

async function pair() {
  const dir = await tempDir();
  const a = join(dir, "a.safetensors"), b = join(dir, "b.safetensors");
  // Different seeds: different directions. alpha != rank, so the scale alpha / r is part of what is measured.
  await buildLora({ path: a, arch: "flux1", format: "kohya", pick, rank: 4, alpha: () => 2 });
  await buildLora({ path: b, arch: "flux1", format: "kohya", pick, rank: 4, seed: 7, alpha: () => 8 });
  return { dir, a, b };
}

async function merge(method: MergeMethod, inputs: Array<{ path: string; weight: number }>, output: string, to?: "diffusers") {
  const events = await collectEvents(mergeLora({ inputs, output, method, ...(to ? { to } : {}), worker: { env: { ...process.env, OMP_NUM_THREADS: "1" } } }));
  const done = events.find((e) => e.type === "done") as { result: { deltaError?: { relative: number; modules: number; of: number }; exact?: boolean } } | undefined;
  const warnings = events.filter((e) => e.type === "warning").map((e) => (e as { code?: string }).code);
  return { deltaError: done?.result.deltaError, exact: done?.result.exact, warnings };
}

/** The measure run on a written file directly (what merge runs for linear and svd), every module. */
async function measured(output: string, inputs: Array<{ path: string; weight: number }>) {
  const open = async (path: string) => {
    const file = await openSafetensors({ path });
    return { file, parsed: parseLora({ tensors: file.tensors, metadata: file.metadata, alphas: await readAlphas(file) }) };
  };
  const sides = await Promise.all(inputs.map(async (i) => ({ ...(await open(i.path)), weight: i.weight })));
  return measureDeltaError({ inputs: sides, output: await open(output), sample: Number.MAX_SAFE_INTEGER });
}

describe("merge reports its delta error against the exact weighted sum", () => {
  it("cat: exact by construction (said, not measured per run) and ~0 when measured on every module; also written in diffusers names (fused qkv split, final modulation halves swapped)", async () => {
    const { dir, a, b } = await pair();
    const inputs = [{ path: a, weight: 0.7 }, { path: b, weight: -0.4 }];
    for (const to of [undefined, "diffusers"] as const) {
      const out = join(dir, `cat-${to ?? "kohya"}.safetensors`);
      const r = await merge("cat", inputs, out, to);
      expect(r.exact).toBe(true);
      expect(r.deltaError).toBeUndefined();
      expect(r.warnings).not.toContain("W_MERGE_DELTA_ERROR");
      const d = await measured(out, inputs);
      expect(d.relative, to).toBeLessThan(1e-6);
      expect(d.of).toBe(3); // qkv, proj, final modulation
    }
    if (HAS_PYTHON) {
      const numpy = oracle("merge_delta_error.py", [join(dir, "cat-kohya.safetensors"), `${a}:0.7`, `${b}:-0.4`]);
      expect(numpy.relative).toBeLessThan(1e-6);
    }
  }, 60_000);

  it.runIf(HAS_PYTHON)("linear: the error numpy finds from dense deltas (> 0, far above the threshold), with the warning", async () => {
    const { dir, a, b } = await pair();
    const out = join(dir, "linear.safetensors");
    const r = await merge("linear", [{ path: a, weight: 0.6 }, { path: b, weight: 0.4 }], out);
    const numpy = oracle("merge_delta_error.py", [out, `${a}:0.6`, `${b}:0.4`]);
    expect(numpy.relative).toBeGreaterThan(MERGE_DELTA_ERROR.warnAbove);
    expect(r.deltaError!.relative).toBeCloseTo(numpy.relative, 5);
    expect(Math.abs(r.deltaError!.relative - numpy.relative) / numpy.relative).toBeLessThan(1e-4);
    expect(r.warnings).toContain("W_MERGE_DELTA_ERROR");
    // The CLI: the same number in --json's done event, and said on the `wrote` line with the coded warning.
    const cli = (args: string[]) => spawnSync(process.execPath, [join(REPO, "bin/loraspec.mjs"), "merge", `${a}:0.6`, `${b}:0.4`, "--method", "linear", "--force", ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1", OMP_NUM_THREADS: "1" } });
    const json = cli(["-o", join(dir, "linear-cli.safetensors"), "--json"]);
    const done = json.stdout.trim().split("\n").map((l) => JSON.parse(l)).find((e) => e.type === "done");
    expect(done.result.deltaError.relative).toBeCloseTo(numpy.relative, 5);
    const text = cli(["-o", join(dir, "linear-cli.safetensors")]);
    expect(text.stderr).toMatch(/W_MERGE_DELTA_ERROR|warning the linear merge's delta is/);
    expect(text.stderr).toContain(`delta ${(numpy.relative * 100).toPrecision(3)}% off the exact weighted sum, all 3 modules measured`);
  }, 120_000);

  it.runIf(HAS_PYTHON)("linear of one LoRA with itself: (sqrt c1 + sqrt c2)^2 for c1 + c2, the error the algebra gives", async () => {
    const { dir, a } = await pair();
    const r = await merge("linear", [{ path: a, weight: 0.5 }, { path: a, weight: 0.25 }], join(dir, "self.safetensors"));
    // Same direction, so no cross terms of other directions: the delta is scaled by (sqrt(0.5) + sqrt(0.25))^2 = 1.457 instead of 0.75.
    const expected = ((Math.sqrt(0.5) + Math.sqrt(0.25)) ** 2 - 0.75) / 0.75;
    expect(r.deltaError!.relative).toBeCloseTo(expected, 5);
    expect(r.warnings).toContain("W_MERGE_DELTA_ERROR");
  }, 120_000);

  it("the threshold is a sourced knowledge record", () => {
    expect(MERGE_DELTA_ERROR).toMatchObject({ warnAbove: expect.any(Number), source: expect.stringMatching(/\S/), asOf: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) });
    expect(MERGE_DELTA_ERROR.methods).toEqual(expect.arrayContaining(["linear", "svd"]));
    expect(MERGE_DELTA_ERROR.methods).not.toContain("cat"); // exact by construction, and measuring it grows with rank^2
  });
});
