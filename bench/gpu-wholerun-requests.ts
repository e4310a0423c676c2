/**
 * The train requests bench/gpu-wholerun.py runs: what `loraspec train` compiles (core's
 * compileDiffusers, every lever as the plan decides it) for an SDXL and a FLUX.1 [dev] character
 * LoRA on one H200 (141 GB), 20 images, --steps steps, save and samples every 250. The GPU machine has no Node,
 * so the requests travel as bench/data/gpu-wholerun-requests.json; the bench fills in the paths.
 * Run: npx tsx bench/gpu-wholerun-requests.ts [--steps 400]   (regenerate after a plan change)
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { compileDiffusers } from "../packages/core/src/compile/diffusers.js";
import { ContractSchema } from "../packages/core/src/contract/schema.js";
import { planRun } from "../packages/core/src/plan/plan-run.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const WHOLERUN_REQUESTS_FILE = join(ROOT, "bench/data/gpu-wholerun-requests.json");
const dataset = { images: 20, captioned: 20, totalBytes: 20 * 1_500_000, resolutions: Array(20).fill({ width: 1024, height: 1024 }) };

/** What the committed file holds for `steps` (packages/core/test/plan/wholerun-requests-fresh.spec.ts holds the two equal). */
export function wholerunRequests(steps: number): Record<string, unknown> {
  const out: Record<string, unknown> = { steps, compiledBy: "bench/gpu-wholerun-requests.ts", requests: {} };
  for (const [key, model] of [["sdxl", "sdxl"], ["flux1", "flux1-dev"]] as const) {
    const contract = ContractSchema.parse({
      version: 1,
      name: `wholerun-${key}`,
      target: "character",
      base: { model },
      trainer: { name: "diffusers" },
      hardware: { kind: "local", gpu: "H200", vram_gb: 141 },
      dataset: { path: "./dataset", expected_images: 20, resolution: 1024 },
      trigger: { word: "txcl" },
      hyperparameters: { steps, save_every: 250, batch_size: 1, rank: 16, learning_rate: 1e-4, optimizer: "adamw" },
      // issue 22's whole run: samples every 250 steps (the rubric's default prompts and seeds)
      samples: { every: 250 },
      // random weights spike past the default 4x rule after ~300 steps (2026-12-02 warm run stopped
      // at step 286); a bench of wall time must run every step, so only a NaN-sized spike stops it
      failure: { loss_spike_factor: 1e6 },
    });
    const plan = planRun(contract, dataset as never);
    const compiled = compileDiffusers(contract, { steps, saveEvery: 250 } as never, { datasetDir: "DATASET", outputDir: "OUTPUT", cacheDir: "CACHE" });
    (out.requests as Record<string, unknown>)[key] = {
      request: compiled.request,
      choices: compiled.choices.map((c) => `${c.setting}=${String(c.value)}: ${c.why}`),
      planSecondsPerStep: plan.selected?.secondsPerStep,
    };
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf("--steps");
  const steps = at > 0 ? Number(process.argv[at + 1]) : 400;
  await writeFile(WHOLERUN_REQUESTS_FILE, `${JSON.stringify(wholerunRequests(steps), null, 2)}\n`);
  console.log(`wrote ${WHOLERUN_REQUESTS_FILE}`);
}
