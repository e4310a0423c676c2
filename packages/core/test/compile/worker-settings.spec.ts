import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { compileDiffusers, type DiffusersTrainRequest } from "@loraspec/core/compile/diffusers.js";
import { ContractSchema } from "@loraspec/core/contract/schema.js";
import { BUILTIN_TRAINER } from "@loraspec/core/knowledge/builtin-trainer.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { tempDirsPerFile } from "../../../engine/test/test-helpers.js";

/**
 * Core decides, the worker executes: the worker, run on this CPU from the compiled request, reports
 * in its `settings` event exactly the settings `loraspec plan` lists (plan.workerSettings); what it
 * applies differs only by levers this device cannot run, each refused with its coded warning.
 */
const root = fileURLToPath(new URL("../../../../", import.meta.url));
const python = join(root, "worker/.venv/bin/python");
const env = { ...process.env, PYTHONPATH: join(root, "worker"), OMP_NUM_THREADS: "1" };
const dir = tempDirsPerFile("loraspec-settings-")(); // removed when this file's tests are done
const bases = { sdxl: join(dir, "base-sdxl"), flux1: join(dir, "base-flux1") };

type Event = { type: string; code?: string; settings?: Record<string, unknown>; applied?: Record<string, unknown> };

/**
 * One Python process for the whole file (each interpreter start imports torch and diffusers: the
 * file's cost): it makes the tiny bases and the dataset, then runs each request through the
 * `train` command's handler (what `python -m loraspec_worker train -` calls) with the events
 * stream stopped at the settings event (the steps themselves are not needed).
 */
const DRIVER = `
import io, json, sys
from PIL import Image
from loraspec_worker import protocol
from loraspec_worker.__main__ import COMMANDS
from loraspec_worker.tiny_base import make_tiny_base
import importlib
job = json.load(sys.stdin)
for arch, out in job["bases"].items():
    make_tiny_base(arch, out)
for i in range(2):
    Image.new("RGB", (48, 40), (i * 90, 40, 200)).save(f"{job['dataset']}/{i}.png")
class Stop(BaseException):
    pass
class Events(io.TextIOBase):
    def __init__(self):
        self.events = []
    def write(self, text):
        for line in text.splitlines():
            if line.strip():
                self.events.append(json.loads(line))
                if self.events[-1]["type"] in ("settings", "error"):
                    raise Stop
        return len(text)
module, func = COMMANDS["train"].split(":")
train = getattr(importlib.import_module(module), func)
out = []
real = sys.stdout
for request in job["requests"]:
    protocol._out = events = Events()
    try:
        train(request)
    except Stop:
        pass
    except protocol.WorkerError as e:
        events.events.append(e.to_event())
    out.append(events.events)
protocol._out = None
real.write(json.dumps(out))
`;

const CASES = [["sdxl", "sdxl"], ["flux1-dev", "flux1"]].flatMap(([model, arch]) => [["H200", undefined], [undefined, undefined]].map(([gpu]) => ({ model: model!, arch: arch as "sdxl" | "flux1", gpu })));

function compiled({ model, arch, gpu }: (typeof CASES)[number]) {
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
  const { request } = compileDiffusers(contract, plan, { datasetDir: dir, outputDir: join(dir, `out-${model}-${gpu}`), basePath: bases[arch] });
  return { plan, request: request as DiffusersTrainRequest };
}

let events: Event[][] = [];

describe.skipIf(!existsSync(python))("the worker runs the settings the plan lists", () => {
  beforeAll(() => {
    const job = { bases, dataset: dir, requests: CASES.map((c) => compiled(c).request) };
    const r = spawnSync(python, ["-c", DRIVER], { env, input: JSON.stringify(job), encoding: "utf8", maxBuffer: 16 << 20 });
    if (r.status !== 0) throw new Error(`the worker driver failed: ${r.stderr.slice(-3000)}`);
    events = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Event[][]; // the last line: a library may print before it
  }, 240_000);

  CASES.forEach((c, i) => {
    const { model, arch, gpu } = c;
    it(`${model}, ${gpu ?? "no GPU named"}`, () => {
      const { plan } = compiled(c);
      expect(plan.workerSettings).toBeDefined();
      const settings = events[i]!.find((e) => e.type === "settings");
      expect(settings, JSON.stringify(events[i]!.at(-1))).toBeDefined();
      expect(settings!.settings).toEqual(plan.workerSettings);
      const refusals: Record<string, string> = BUILTIN_TRAINER.refusals;
      const codes = events[i]!.filter((e) => e.type === "warning").map((e) => e.code);
      for (const [key, value] of Object.entries(settings!.settings!)) {
        if (isDeepStrictEqual(settings!.applied![key], value)) continue;
        expect(Object.keys(refusals), `${key} changed without a refusal`).toContain(key);
        expect(codes).toContain(refusals[key]);
      }
      // the levers the plan turns on for the H200 are on in the request: this CPU refuses them out loud
      if (arch === "sdxl") expect([settings!.settings!.cuda_graphs, settings!.applied!.cuda_graphs]).toEqual([true, false]);
      if (arch === "flux1") expect([settings!.settings!.compile, settings!.applied!.compile]).toEqual([true, false]);
    });
  });
});
