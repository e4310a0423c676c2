import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { compileDiffusers, type DiffusersTrainRequest } from "@loraspec/core/compile/diffusers.js";
import { ContractSchema } from "@loraspec/core/contract/schema.js";
import { BUILTIN_TRAINER } from "@loraspec/core/knowledge/builtin-trainer.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";

/**
 * Core decides, the worker executes: the worker, run on this CPU from the compiled request, reports
 * in its `settings` event exactly the settings `loraspec plan` lists (plan.workerSettings); what it
 * applies differs only by levers this device cannot run, each refused with its coded warning.
 */
const root = fileURLToPath(new URL("../../../../", import.meta.url));
const python = join(root, "worker/.venv/bin/python");
const env = { ...process.env, PYTHONPATH: join(root, "worker"), OMP_NUM_THREADS: "1" };
const dir = mkdtempSync(join(tmpdir(), "loraspec-settings-"));
const bases: Record<string, string> = {};

type Event = { type: string; code?: string; settings?: Record<string, unknown>; applied?: Record<string, unknown> };

/** Runs the worker until its settings event, then stops it (the steps themselves are not needed). */
async function workerEvents(request: DiffusersTrainRequest): Promise<Event[]> {
  const child = spawn(python, ["-m", "loraspec_worker", "train", "-"], { env, stdio: ["pipe", "pipe", "ignore"] });
  child.stdin.end(JSON.stringify(request));
  const events: Event[] = [];
  for await (const line of createInterface({ input: child.stdout })) {
    const event = JSON.parse(line) as Event;
    events.push(event);
    if (event.type === "settings" || event.type === "error") break;
  }
  child.kill("SIGKILL");
  return events;
}

describe.skipIf(!existsSync(python))("the worker runs the settings the plan lists", () => {
  beforeAll(() => {
    for (const arch of ["sdxl", "flux1"]) {
      bases[arch] = join(dir, `base-${arch}`);
      const made = spawnSync(python, ["-m", "loraspec_worker", "make-tiny-base", "--arch", arch, "--out", bases[arch]!], { env, encoding: "utf8" });
      if (made.status !== 0) throw new Error(`make-tiny-base failed: ${made.stderr}`);
    }
    const data = spawnSync(python, ["-c", "import sys; from PIL import Image; [Image.new('RGB', (48, 40), (i * 90, 40, 200)).save(f'{sys.argv[1]}/{i}.png') for i in range(2)]", dir], { env });
    if (data.status !== 0) throw new Error("could not write the dataset");
  }, 120_000);

  for (const [model, arch] of [["sdxl", "sdxl"], ["flux1-dev", "flux1"]] as const) {
    for (const gpu of ["H200", undefined]) {
      it(`${model}, ${gpu ?? "no GPU named"}`, async () => {
        const contract = ContractSchema.parse({
          version: 1,
          name: "txcl",
          base: { model },
          trainer: { name: "diffusers" },
          hardware: { kind: "local", vram_gb: 141, ...(gpu ? { gpu } : {}) },
          target: "character",
          dataset: { path: dir, expected_images: 2, resolution: 64 },
          captions: { style: "natural" },
          trigger: { word: "txcl" },
          hyperparameters: { learning_rate: 1e-4, steps: 1500, save_every: 500, optimizer: "adamw" },
        });
        const plan = planRun(contract);
        expect(plan.workerSettings).toBeDefined();
        const { request } = compileDiffusers(contract, plan, { datasetDir: dir, outputDir: join(dir, `out-${model}-${gpu}`), basePath: bases[arch] });
        const events = await workerEvents(request);
        const settings = events.find((e) => e.type === "settings");
        expect(settings, JSON.stringify(events.at(-1))).toBeDefined();
        expect(settings!.settings).toEqual(plan.workerSettings);
        const refusals: Record<string, string> = BUILTIN_TRAINER.refusals;
        const codes = events.filter((e) => e.type === "warning").map((e) => e.code);
        for (const [key, value] of Object.entries(settings!.settings!)) {
          if (isDeepStrictEqual(settings!.applied![key], value)) continue;
          expect(Object.keys(refusals), `${key} changed without a refusal`).toContain(key);
          expect(codes).toContain(refusals[key]);
        }
        // the levers the plan turns on for the H200 are on in the request: this CPU refuses them out loud
        if (arch === "sdxl") expect([settings!.settings!.cuda_graphs, settings!.applied!.cuda_graphs]).toEqual([true, false]);
        if (arch === "flux1") expect([settings!.settings!.compile, settings!.applied!.compile]).toEqual([true, false]);
      }, 120_000);
    }
  }
});
