import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents, type LoraspecEvent } from "@loraspec/core/events.js";
import type { RubricSpec } from "@loraspec/core/validate/plan-validation.js";
import { createWorkerSampler } from "@loraspec/engine/samplers/worker-sampler.js";
import { validateLora, type ValidationResult } from "@loraspec/engine/validate/validate-lora.js";

// End to end on CPU: a tiny SDXL base, LoRAs in diffusers and Kohya format, a tiny CLIP scorer,
// all made by make_fixtures.py with random weights. 32x32 images, 2 steps.
const repo = fileURLToPath(new URL("../../../../", import.meta.url));
const python = join(repo, "worker/.venv/bin/python");
let fx: string;
const settings = { width: 32, height: 32, steps: 2 };
// Two worker processes per validation (render, score) on a shared 2-core machine.
const SLOW = 400_000;

const rubric = (over: Partial<RubricSpec> = {}): RubricSpec => ({
  seeds: [1, 2],
  trigger_prompts: ["a photo of {trigger}"],
  pose_variations: 3,
  novel_scenes: ["{trigger} on the moon"],
  stack: [],
  self_weight: 0.5,
  weight_sweep: [0.6, 1.0],
  ...over,
});

beforeAll(() => {
  fx = mkdtempSync(join(tmpdir(), "loraspec-validate-"));
  execFileSync(python, [join(repo, "packages/engine/test/validate/make_fixtures.py"), fx], {
    env: { ...process.env, PYTHONPATH: join(repo, "worker") },
    stdio: ["ignore", "pipe", "pipe"],
  });
});
afterAll(() => rmSync(fx, { recursive: true, force: true }));

async function validate(name: string, lora: string, over: Partial<RubricSpec> = {}, extra: Partial<Parameters<typeof validateLora>[0]> = {}) {
  const outDir = join(fx, `out-${name}`);
  const events: LoraspecEvent[] = await collectEvents(
    validateLora({
      name,
      rubric: rubric(over),
      trigger: "txcl",
      target: "character",
      candidates: [{ name: lora.split("/").pop()!, path: lora }],
      reference: readdirSync(join(fx, "dataset")).map((f) => join(fx, "dataset", f)),
      outDir,
      sampler: createWorkerSampler({ config: { base: join(fx, "base"), device: "cpu" } }),
      settings,
      scoreModel: join(fx, "clip"),
      device: "cpu",
      ...extra,
    }),
  );
  const result = JSON.parse(readFileSync(join(outDir, "validation.json"), "utf8")) as ValidationResult;
  return { events, result, outDir };
}

describe("validateLora (worker sampler, tiny SDXL, tiny CLIP)", () => {
  it("a LoRA whose trigger was never trained (peft init, B = 0) fails the trigger check at every weight", async () => {
    // Stacked with a Kohya-format LoRA: a diffusers-format file and a Kohya one in one pipeline.
    const { events, result, outDir } = await validate("untrained", join(fx, "zero.safetensors"), { stack: [{ lora: join(fx, "style_kohya.safetensors"), weight: 0.3 }] });
    const done = events.at(-1)!;
    expect(done).toMatchObject({ type: "done", result: { status: "fail" } });
    for (const w of result.verdicts.weights) {
      const trigger = w.checks.find((c) => c.check === "trigger")!;
      expect(trigger.status).toBe("fail");
      // Bit-identical to the base: the LoRA adds exactly nothing beyond what the token does.
      expect(trigger.measures[0]!.value).toBeCloseTo(0, 6);
    }
    expect(events.some((e) => e.type === "warning" && e.code === "W_FEW_VARIATIONS")).toBe(true);
    expect(existsSync(join(outDir, "report.html"))).toBe(true);
    expect(result.verdicts.stack!.measures.find((m) => m.id === "stack_retention" && m.detail?.adapter === "style_kohya")!.value).not.toBeNull();
    for (const rel of Object.values(result.images)) expect(existsSync(join(outDir, rel))).toBe(true);
  }, SLOW);

  it("a Kohya-format LoRA stacked with a diffusers-format one: sweep and stack run and are judged", async () => {
    const self = "rand_kohya.safetensors";
    const other = "rand.safetensors";
    const { result, outDir } = await validate(self.replace(".safetensors", ""), join(fx, self), { stack: [{ lora: join(fx, other), weight: 0.3 }] });
    expect(result.plan.weights.map((w) => w.weight)).toEqual([0.6, 1.0]);
    expect(result.verdicts.best?.weight).toBeOneOf([0.6, 1.0]);
    const stack = result.verdicts.stack!;
    expect(stack.measures.find((m) => m.id === "stack_combined_weight")).toMatchObject({ value: 0.8, status: "pass" });
    const retention = stack.measures.filter((m) => m.id === "stack_retention");
    expect(retention).toHaveLength(2);
    // Both adapters really act alone (a random LoRA moves the image), so retention is measured.
    for (const m of retention) expect(m.value).not.toBeNull();
    expect(result.scores.trigger[result.plan.weights[0]!.key]!.distance).toBeGreaterThan(0);
    const html = readFileSync(join(outDir, "report.html"), "utf8");
    expect(html).toContain('id="check-stack"');
    expect(html).not.toMatch(/src="https?:/);
  }, SLOW);

  it("compares a run's checkpoints at one weight and reads its loss curve", async () => {
    writeFileSync(join(fx, "events.jsonl"), ['{"type":"loss","step":1,"loss":0.5}', '{"type":"progress"}', '{"type":"loss","step":2,"loss":0.4}', '{"type":"lo'].join("\n"));
    const { result, outDir } = await validate("checkpoints", "", { seeds: [1], novel_scenes: [], pose_variations: 2 }, {
      candidates: [
        { name: "step 2", path: join(fx, "zero.safetensors"), step: 2 },
        { name: "step 4", path: join(fx, "rand.safetensors"), step: 4 },
      ],
      weights: [1],
      stack: false,
      eventsFile: join(fx, "events.jsonl"),
    });
    expect(result.verdicts.weights.map((w) => w.step)).toEqual([2, 4]);
    expect(result.verdicts.weights[0]!.checks[0]!.status).toBe("fail");
    expect([2, 4]).toContain(result.verdicts.best!.step);
    const html = readFileSync(join(outDir, "report.html"), "utf8");
    expect(html).toContain("6. checkpoints");
    expect(html).toContain('<svg id="loss-curve"');
  }, SLOW);
});
