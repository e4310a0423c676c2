/**
 * The Kohya sd-scripts configs bench/peer-kohya.py times on a GPU (issue 22: the built-in trainer against
 * Kohya, like for like): what loraspec's own Kohya compiler (compileKohya, pinned kohya-ss/sd-scripts
 * v0.10.1, ae72efb) writes for the speed contract of the Kohya and ai-toolkit rows — 1024², batch 1,
 * rank 16 / alpha 16, AdamW lr 1e-4, bf16, SDPA, cached latents and text-encoder outputs, no gradient
 * checkpointing, 60 steps over 4 images — for SDXL and FLUX.1 [dev], `network.targets: all-linear`
 * (Kohya's own module set, knowledge/lora-targets.ts: no network_args). The GPU machine has no Node, so
 * the dataset TOML, the args TOML and the launch command travel as bench/data/peer-kohya-jobs.json with
 * placeholder paths (/BASE, /DATASET, /OUTPUT, /CONFIG, /SDSCRIPTS, /TOKENIZERS) the bench fills in.
 * No bench edits: the compiled files run as written.
 * Run: npx tsx bench/peer-kohya-jobs.ts [--steps 60]   (regenerate after a compiler change)
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compileKohya } from "../packages/core/src/compile/kohya/compile-kohya.js";
import { ContractSchema } from "../packages/core/src/contract/schema.js";
import { KOHYA_PIN } from "../packages/core/src/trainers/pins.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const at = process.argv.indexOf("--steps");
const steps = at > 0 ? Number(process.argv[at + 1]) : 60;
/** The placeholders the bench replaces with the device's paths (absolute: the FLUX.1 profile wants a local path). */
export const PLACEHOLDERS = ["/BASE", "/DATASET", "/OUTPUT", "/CONFIG", "/SDSCRIPTS", "/TOKENIZERS"] as const;

const jobs: Record<string, unknown> = {};
for (const [key, model] of [["sdxl", "sdxl"], ["flux1", "flux1-dev"]] as const) {
  const contract = ContractSchema.parse({
    version: 1,
    name: `peer-${key}`,
    target: "character",
    base: { model, path: "/BASE", quantize: "none" },
    trainer: { name: "kohya" },
    hardware: { kind: "local", gpu: "H200", vram_gb: 141 },
    dataset: { path: "./dataset", expected_images: 4, resolution: 1024 },
    trigger: { word: "txcl" },
    network: { targets: "all-linear" },
    hyperparameters: {
      steps, save_every: steps, batch_size: 1, rank: 16, alpha: 16, learning_rate: 1e-4, optimizer: "adamw",
      precision: "bf16", gradient_checkpointing: false, cache_latents: true, cache_text_encoder_outputs: true,
    },
  });
  const compiled = compileKohya(contract, { steps, saveEvery: steps }, {
    datasetDir: "/DATASET", outputDir: "/OUTPUT", configDir: "/CONFIG", trainerDir: "/SDSCRIPTS", tokenizerCacheDir: "/TOKENIZERS", contractDir: "/",
  });
  jobs[key] = { script: compiled.script, command: compiled.command, datasetToml: compiled.datasetToml, argsToml: compiled.argsToml };
}
const out = {
  steps,
  compiledBy: "bench/peer-kohya-jobs.ts",
  trainer: `kohya-ss/sd-scripts ${KOHYA_PIN.version} (${KOHYA_PIN.commit})`,
  placeholders: PLACEHOLDERS,
  benchEdits: {},
  jobs,
};
const file = join(ROOT, "bench/data/peer-kohya-jobs.json");
await writeFile(file, `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote ${file}`);
