/**
 * The ai-toolkit jobs bench/peer-aitoolkit.py times on a GPU (issue 22: the built-in trainer against
 * ai-toolkit, like for like): what loraspec's own ai-toolkit compiler (compileAiToolkit, pinned
 * ostris/ai-toolkit 0.12.26, 27a03a9) writes for the speed contract the Kohya row used — 1024²,
 * batch 1, rank 16 / alpha 16, AdamW lr 1e-4, bf16, cached latents (and text embeddings where
 * ai-toolkit's profile caches them), no gradient checkpointing, 60 steps over 4 images — for
 * FLUX.1 [dev] and FLUX.2 [klein] 4B, each with base.quantize none (the timing row) and fp8 (the
 * memory row: ai-toolkit's qfloat8 base and text encoder). The GPU machine has no Node, so the jobs
 * travel as bench/data/peer-aitoolkit-jobs.json; the bench fills in the paths (BASE, DATASET, OUTPUT).
 * One bench-only edit, listed in the file: `train.disable_sampling: true` (no end-of-run samples;
 * the timed steps are the same).
 * Run: npx tsx bench/peer-aitoolkit-jobs.ts [--steps 60]   (regenerate after a compiler change)
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compileAiToolkit } from "../packages/core/src/compile/ai-toolkit/compile-ai-toolkit.js";
import { ContractSchema } from "../packages/core/src/contract/schema.js";
import { AI_TOOLKIT_PIN } from "../packages/core/src/trainers/pins.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const at = process.argv.indexOf("--steps");
const steps = at > 0 ? Number(process.argv[at + 1]) : 60;
const BENCH_EDITS = { disable_sampling: true };

const jobs: Record<string, unknown> = {};
for (const [key, model] of [["flux1", "flux1-dev"], ["klein4b", "flux2-klein-4b"]] as const) {
  for (const quantize of ["none", "fp8"] as const) {
    const contract = ContractSchema.parse({
      version: 1,
      name: `peer-${key}`,
      target: "character",
      base: { model, path: "BASE", quantize },
      trainer: { name: "ai-toolkit" },
      hardware: { kind: "local", gpu: "H200", vram_gb: 141 },
      dataset: { path: "./dataset", expected_images: 4, resolution: 1024 },
      trigger: { word: "txcl" },
      hyperparameters: {
        steps, save_every: steps, batch_size: 1, rank: 16, alpha: 16, learning_rate: 1e-4, optimizer: "adamw",
        precision: "bf16", gradient_checkpointing: false, cache_latents: true, cache_text_encoder_outputs: true,
      },
    });
    const compiled = compileAiToolkit(contract, { steps, saveEvery: steps }, { datasetDir: "DATASET", outputDir: "OUTPUT", contractDir: "/" });
    const [process] = (compiled.job.config as { process: { train: Record<string, unknown> }[] }).process;
    Object.assign(process!.train, BENCH_EDITS);
    jobs[quantize === "none" ? key : `${key}-${quantize}`] = { arch: compiled.arch, job: compiled.job };
  }
}
const out = {
  steps,
  compiledBy: "bench/peer-aitoolkit-jobs.ts",
  trainer: `ostris/ai-toolkit ${AI_TOOLKIT_PIN.version} (${AI_TOOLKIT_PIN.commit})`,
  benchEdits: { "train.disable_sampling": true },
  jobs,
};
const file = join(ROOT, "bench/data/peer-aitoolkit-jobs.json");
await writeFile(file, `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote ${file}`);
