import { execFileSync } from "node:child_process";
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContractSchema, type Contract } from "@loraspec/core/contract/schema.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { preflightBase } from "@loraspec/engine/project/preflight-base.js";
import { buildTrainJob } from "@loraspec/engine/run/build-train-job.js";
import { openRunStore, type RunStore } from "@loraspec/engine/run/run-store.js";
import { workerPython } from "@loraspec/engine/worker/worker-paths.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import type { RunWorkerFn } from "@loraspec/engine/samplers/worker-sampler.js";
import { validateProject } from "@loraspec/engine/validate/validate-project.js";
import { writeValidationScript } from "@loraspec/engine/validate/write-validation-script.js";

// The class: check's verdict on base.path is the trainer's. For each trainer x base-folder shape, check
// (its preflight of the base, and the lint rules on base.*) is clean exactly when the trainer can load
// what it is handed: the built-in trainer's loader is called for real (worker train/model.py
// load_pipeline on the toy bases, CPU, fp32); kohya's compiled args.toml must name files that exist
// (and an SDXL folder must load with diffusers, as sd-scripts does); ai-toolkit's name_or_path must
// hold transformer/ (FLUX) or load with diffusers (SDXL).
const repo = fileURLToPath(new URL("../../../../", import.meta.url));
let root: string;
let store: RunStore;
let loads: Record<string, { ok: boolean; error?: string }> = {};

/** A safetensors file with one-element tensors of these names (a header test fixture, no real weights). */
async function headerFile(file: string, keys: string[]): Promise<void> {
  const header: Record<string, unknown> = {};
  keys.forEach((k, i) => (header[k] = { dtype: "BF16", shape: [1], data_offsets: [2 * i, 2 * i + 2] }));
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  await writeFile(file, Buffer.concat([len, json, Buffer.alloc(2 * keys.length)]));
}

// A [dev] transformer: [schnell] has no guidance embedder (guidance_in.*), the key sd-scripts tells them apart by.
const FLUX_KEYS = ["double_blocks.0.img_mod.lin.weight", "single_blocks.0.linear1.weight", "guidance_in.in_layer.weight"];

/** sd-scripts' variant rule (flux_utils.analyze_checkpoint_state): a transformer file without guidance_in keys is [schnell]. */
function variantOf(file: string): string {
  const buf = readFileSync(file);
  const header = buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString();
  return header.includes('"guidance_in.') ? "flux1-dev" : "flux1-schnell";
}
const ROLE_FILES: Record<string, string[]> = {
  "flux1-dev.safetensors": FLUX_KEYS,
  "clip_l.safetensors": ["text_model.encoder.layers.0.mlp.fc1.weight"],
  "t5xxl_fp16.safetensors": ["encoder.block.0.layer.0.SelfAttention.q.weight"],
  "t5xxl_fp8_e4m3fn.safetensors": ["encoder.block.0.layer.0.SelfAttention.q.weight"],
  "ae.safetensors": ["decoder.conv_in.weight"],
};
const BFL: Record<string, string[]> = {
  "bfl-full": ["flux1-dev.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors", "ae.safetensors"],
  "bfl-fp8-t5": ["flux1-dev.safetensors", "clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors", "ae.safetensors"],
  "bfl-no-ae": ["flux1-dev.safetensors", "clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors"],
};
const ARCH: Record<string, string> = { sdxl: "sdxl", "flux1-dev": "flux1", "flux1-schnell": "flux1" };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-load-forms-"));
  await mkdir(join(root, "dataset"));
  await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 10, g: 0, b: 0 } } }).png().toFile(join(root, "dataset", "a.png"));
  await writeFile(join(root, "dataset", "a.txt"), "txcl photo");
  await cp(join(repo, "models", "toy-sdxl"), join(root, "sdxl-full"), { recursive: true });
  await cp(join(repo, "models", "toy-sdxl"), join(root, "sdxl-no-vae"), { recursive: true });
  await rm(join(root, "sdxl-no-vae", "vae"), { recursive: true });
  await cp(join(repo, "models", "toy-flux1"), join(root, "flux-full"), { recursive: true });
  for (const [folder, files] of Object.entries(BFL)) {
    await mkdir(join(root, folder));
    for (const f of files) await headerFile(join(root, folder, f), ROLE_FILES[f]!);
  }
  store = openRunStore({ projectDir: root });
  // The built-in trainer's loader, for real, once for every local folder (the toy bases load in seconds).
  const pairs = [["sdxl-full", "sdxl"], ["sdxl-no-vae", "sdxl"], ["flux-full", "flux1"], ...Object.keys(BFL).map((f) => [f, "flux1"])];
  const script = [
    "import json, sys, torch",
    "from loraspec_worker.train.model import load_pipeline",
    "out = {}",
    "for name, arch in json.loads(sys.argv[1]):",
    "    try:",
    "        load_pipeline(sys.argv[2] + '/' + name, arch, torch.float32); out[name] = {'ok': True}",
    "    except Exception as e:",
    "        out[name] = {'ok': False, 'error': str(e)}",
    "print('RESULT ' + json.dumps(out))",
  ].join("\n");
  const stdout = execFileSync(workerPython(), ["-c", script, JSON.stringify(pairs), root], {
    cwd: join(repo, "worker"),
    env: { ...process.env, OMP_NUM_THREADS: "1", HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1" },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  loads = JSON.parse(stdout.split("\n").find((l) => l.startsWith("RESULT "))!.slice(7));
}, 180_000);
afterAll(async () => {
  store?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

const contractFor = (trainer: string, model: string, path: string | undefined): Contract =>
  ContractSchema.parse({
    version: 1,
    name: "txcl",
    base: { model, ...(path ? { path } : {}) },
    trainer: { name: trainer },
    hardware: { gpu: "RTX 4090" },
    target: "character",
    dataset: { path: "./dataset" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 10, optimizer: "adamw" },
    validation: { sampler: trainer === "diffusers" ? "worker" : "comfyui" },
  });

/** check's errors about the base: its preflight's, and lint's rules on base.* (kohya-flux-single-files). */
async function checkErrors(contract: Contract): Promise<string[]> {
  const preflight = await preflightBase({ contract, contractDir: root, env: { HF_HUB_CACHE: join(root, "empty-cache") } });
  const lint = lintContract(contract, {});
  return [...preflight, ...lint].filter((f) => f.severity === "error" && (f.field ?? "").startsWith("base")).map((f) => f.rule);
}

/** Whether the trainer can load the base it is handed (see the header comment); hub ids: by their loaders' documented form. */
async function loadable(contract: Contract, folder: string | undefined): Promise<{ ok: boolean; named?: string[] }> {
  const trainer = contract.trainer.name;
  const arch = ARCH[contract.base.model]!;
  if (trainer === "diffusers") return { ok: folder === undefined ? true : loads[folder]!.ok };
  let files: Record<string, string>;
  try {
    const run = store.create({ trainer: trainer as "kohya" });
    const job = await buildTrainJob({ contract, contractDir: root, plan: planRun(contract), run, trainerDir: () => ({ trainerDir: "/opt/t", venvDir: "/opt/t/.venv" }), checkDevice: async () => {} });
    if (job.kind !== "process") throw new Error("expected a process job");
    files = job.files!;
  } catch {
    return { ok: false };
  }
  const local = (p: string) => p.startsWith(root);
  if (trainer === "kohya") {
    const model = (parseToml(files["args.toml"]!) as { model_arguments: Record<string, string> }).model_arguments;
    const named = ["pretrained_model_name_or_path", "clip_l", "t5xxl", "ae"].map((k) => model[k]).filter((p): p is string => p !== undefined);
    // sd-scripts trains the variant the transformer file is, whatever base.model says.
    if (arch === "flux1") return { ok: named.length === 4 && named.every((p) => existsSync(p)) && variantOf(named[0]!) === contract.base.model, named };
    return { ok: !local(named[0]!) || loads[folder!]!.ok, named };
  }
  const yamlFile = Object.keys(files).find((f) => f.endsWith(".yaml"))!;
  const nameOrPath = (parseYaml(files[yamlFile]!) as { config: { process: Array<{ model: { name_or_path: string } }> } }).config.process[0]!.model.name_or_path;
  if (!local(nameOrPath)) return { ok: true, named: [nameOrPath] };
  if (arch === "sdxl") return { ok: loads[folder!]!.ok, named: [nameOrPath] };
  const hasTransformer = existsSync(join(nameOrPath, "transformer", "config.json"));
  return { ok: hasTransformer && (!existsSync(join(nameOrPath, "text_encoder")) || loads[folder!]!.ok), named: [nameOrPath] };
}

// trainer, base.model, folder (undefined: the model's Hugging Face id), the rule check must give (undefined: clean).
const TABLE: Array<[string, string, string | undefined, string | undefined]> = [
  ["diffusers", "sdxl", "sdxl-full", undefined],
  ["diffusers", "sdxl", "sdxl-no-vae", "base-component-missing"],
  ["diffusers", "flux1-dev", "flux-full", undefined],
  ["diffusers", "flux1-dev", "bfl-full", "base-load-form"],
  ["diffusers", "flux1-dev", undefined, undefined],
  ["kohya", "sdxl", "sdxl-full", undefined],
  ["kohya", "sdxl", "sdxl-no-vae", "base-component-missing"],
  ["kohya", "flux1-dev", "bfl-full", undefined],
  ["kohya", "flux1-dev", "bfl-fp8-t5", undefined],
  ["kohya", "flux1-dev", "bfl-no-ae", "base-files-missing"],
  ["kohya", "flux1-schnell", "bfl-full", "base-files-missing"],
  ["kohya", "flux1-schnell", "bfl-full/flux1-dev.safetensors", "base-variant-mismatch"],
  ["kohya", "flux1-dev", "bfl-full/flux1-dev.safetensors", undefined],
  ["kohya", "flux1-dev", "flux-full", "base-load-form"],
  ["kohya", "flux1-dev", undefined, "kohya-flux-single-files"],
  ["ai-toolkit", "sdxl", "sdxl-full", undefined],
  ["ai-toolkit", "sdxl", "sdxl-no-vae", "base-component-missing"],
  ["ai-toolkit", "flux1-dev", "flux-full", undefined],
  ["ai-toolkit", "flux1-dev", "bfl-full", "base-load-form"],
  ["ai-toolkit", "flux1-dev", undefined, undefined],
];

describe("check's verdict on the base equals whether the trainer can load it", () => {
  it.each(TABLE)("%s, %s on %s", async (trainer, model, folder, rule) => {
    const contract = contractFor(trainer, model, folder ? `./${folder}` : undefined);
    const errors = await checkErrors(contract);
    const got = await loadable(contract, folder);
    expect(errors.length === 0, `check errors [${errors.join(", ")}], trainer ${got.ok ? "loads it" : "cannot load it"} (${(got.named ?? []).join(", ")}${folder && loads[folder]?.error ? `; loader: ${loads[folder]!.error}` : ""})`).toBe(got.ok);
    expect(errors).toEqual(rule ? [rule] : []);
  }, 60_000);

  it("kohya FLUX.1: the compiled args.toml names the files check resolved (an fp8 T5-XXL by its own name)", async () => {
    const got = await loadable(contractFor("kohya", "flux1-dev", "./bfl-fp8-t5"), "bfl-fp8-t5");
    expect(got.named).toEqual(["flux1-dev.safetensors", "clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors", "ae.safetensors"].map((f) => join(root, "bfl-fp8-t5", f)));
  });

  it("the messages name what is missing: the component, each role's accepted names, the other variant", async () => {
    const byRule = async (trainer: string, model: string, folder: string) =>
      (await preflightBase({ contract: contractFor(trainer, model, `./${folder}`), contractDir: root })).filter((f) => f.severity === "error").map((f) => f.message).join("\n");
    expect(await byRule("diffusers", "sdxl", "sdxl-no-vae")).toContain("vae/ (missing)");
    expect(await byRule("kohya", "flux1-dev", "bfl-no-ae")).toContain("the autoencoder (VAE) (ae.safetensors)");
    expect(await byRule("kohya", "flux1-schnell", "bfl-full")).toMatch(/flux1-schnell\.safetensors.*flux1-dev\.safetensors there is the flux1-dev transformer/s);
    expect(await byRule("ai-toolkit", "flux1-dev", "bfl-full")).toContain("a folder of single files without model_index.json");
  });

  it("validate's worker sampler: a kohya FLUX.1 base of single files is a warning at check, before any GPU time", async () => {
    const contract = ContractSchema.parse({ ...contractFor("kohya", "flux1-dev", "./bfl-full"), validation: { sampler: "worker" } });
    const findings = await preflightBase({ contract, contractDir: root });
    expect(findings.map((f) => `${f.severity} ${f.rule}`)).toEqual(["warning validation-base-not-diffusers"]);
    expect(findings[0]!.fix).toContain("--base");
  });

  it("output.format on a base with other layer sizes than the architecture's (the toy SDXL) is an error; left out, none", async () => {
    const withFormat = ContractSchema.parse({ ...contractFor("diffusers", "sdxl", "./sdxl-full"), output: { format: "kohya" } });
    const findings = await preflightBase({ contract: withFormat, contractDir: root });
    expect(findings.map((f) => f.rule)).toEqual(["output-format-base-shapes"]);
    expect(findings[0]!.message).toContain("block_out_channels [64,128,128], not [320,640,1280]");
    expect(await preflightBase({ contract: contractFor("diffusers", "sdxl", "./sdxl-full"), contractDir: root })).toEqual([]);
  });

  it("validate refuses a single-file base before the worker starts; --base with a diffusers folder reaches it; export-script warns", async () => {
    const contract = ContractSchema.parse({ ...contractFor("kohya", "flux1-dev", "./bfl-full"), validation: { sampler: "worker" } });
    await writeFile(join(root, "lora.yaml"), stringify({ ...contract, hyperparameters: undefined }));
    await writeFile(join(root, "lora.safetensors"), "x");
    const validate = async (base?: string) => {
      let started = false;
      const runWorker: RunWorkerFn = async function* () {
        started = true;
        throw new Error("stop");
      };
      try {
        for await (const _ of validateProject({ contractPath: join(root, "lora.yaml"), cwd: root, lora: join(root, "lora.safetensors"), base, runWorker, width: 8, height: 8, steps: 1 })) void _;
      } catch (error) {
        if (isLoraspecError(error)) return { started, code: error.code, message: error.message, hint: error.hint };
        if ((error as Error).message !== "stop") throw error;
      }
      return { started };
    };
    const refused = await validate();
    expect(refused).toMatchObject({ started: false, code: "E_USAGE" });
    expect(refused.message).toContain("a folder of single files without model_index.json");
    expect(refused.hint).toContain("--base");
    expect(await validate("./flux-full")).toEqual({ started: true });
    const script = await writeValidationScript({ contractPath: join(root, "lora.yaml"), cwd: root, lora: join(root, "lora.safetensors"), out: join(root, "validate.py"), force: true });
    expect(script.warnings?.join("\n")).toContain("DiffusionPipeline.from_pretrained");
    const ok = await writeValidationScript({ contractPath: join(root, "lora.yaml"), cwd: root, lora: join(root, "lora.safetensors"), out: join(root, "validate.py"), force: true, base: "./flux-full" });
    expect(ok.warnings).toBeUndefined();
  }, 60_000);
});
