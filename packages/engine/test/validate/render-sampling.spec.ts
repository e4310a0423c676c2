import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectEvents, type LoraspecEvent } from "@loraspec/core/events.js";
import { SAMPLING, UNKNOWN_BASE_STEPS } from "@loraspec/core/knowledge/sampling.js";
import type { RunWorkerFn } from "@loraspec/engine/samplers/worker-sampler.js";
import { validateProject } from "@loraspec/engine/validate/validate-project.js";
import { writeValidationScript } from "@loraspec/engine/validate/write-validation-script.js";

// validate and export-script render a LoRA with its base's sampling (knowledge/sampling.ts), the
// steps and guidance its training samples use in every trainer; they hard-coded 28 steps and the
// pipeline's guidance, so a Z-Image Turbo LoRA (9 steps, guidance 1) was judged at 28 steps with CFG.
let dir: string;
const renders: Record<string, unknown>[] = [];

const fakeWorker: RunWorkerFn = async function* ({ command, request }) {
  const req = request as Record<string, unknown>;
  if (command === "render-jobs") {
    renders.push(req);
    mkdirSync(req.out_dir as string, { recursive: true });
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 9, g: 9, b: 9 } } }).png().toBuffer();
    for (const j of req.jobs as { id: string }[]) writeFileSync(join(req.out_dir as string, `${j.id}.png`), png);
    yield { type: "done", result: {} } satisfies LoraspecEvent;
    return;
  }
  throw new Error("stop after rendering"); // scoring is not what this test is about
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loraspec-render-sampling-"));
  mkdirSync(join(dir, "dataset"));
  await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toFile(join(dir, "dataset", "a.png"));
  writeFileSync(join(dir, "l.safetensors"), "x");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function contract(base: string): string {
  const file = join(dir, `${base}.yaml`);
  writeFileSync(file, stringify({ version: 1, name: "t", base: { model: base, path: "./base" }, trainer: { name: "diffusers" }, target: "character", dataset: { path: "./dataset" }, trigger: { word: "txcl" }, validation: { seeds: [1] } }));
  return file;
}

async function firstRender(params: Partial<Parameters<typeof validateProject>[0]>): Promise<Record<string, unknown>> {
  renders.length = 0;
  await collectEvents(validateProject({ cwd: dir, runWorker: fakeWorker, lora: "l.safetensors", width: 8, height: 8, ...params })).catch(() => undefined);
  expect(renders.length).toBeGreaterThan(0);
  return renders[0]!;
}

describe("validate and export-script render with the base's sampling", () => {
  it.each(Object.entries(SAMPLING))("%s: validate's render and the exported script default to its steps and guidance", async (base, record) => {
    const file = contract(base);
    const req = await firstRender({ contractPath: file });
    expect([req.steps, req.guidance_scale]).toEqual([record.steps, record.guidance]);
    const out = join(dir, `${base}.py`);
    await writeValidationScript({ cwd: dir, contractPath: file, lora: "l.safetensors", out, force: true });
    const script = readFileSync(out, "utf8");
    expect(script).toContain(`"steps": ${record.steps},`);
    expect(script).toContain(`"guidance_scale": ${record.guidance}`);
  });

  it("--steps and --guidance win; without a contract: the fallback steps and the pipeline's guidance", async () => {
    const req = await firstRender({ contractPath: contract("zimage-turbo"), steps: 3, guidance: 0 });
    expect([req.steps, req.guidance_scale]).toEqual([3, 0]);
    const bare = await firstRender({ trigger: "txcl", base: "./base" });
    expect([bare.steps, bare.guidance_scale]).toEqual([UNKNOWN_BASE_STEPS.steps, undefined]);
  });
});
