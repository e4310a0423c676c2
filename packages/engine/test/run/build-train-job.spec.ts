import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { stringify } from "yaml";
import yauzl from "yauzl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { buildTrainJob } from "@loraspec/engine/run/build-train-job.js";
import { openRunStore, type RunStore } from "@loraspec/engine/run/run-store.js";

let dir: string;
let store: RunStore;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "loraspec-job-"));
  mkdirSync(join(dir, "dataset", "sub"), { recursive: true });
  for (const [i, name] of ["a", "b", "sub/a"].entries()) {
    await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 10 * i, g: 0, b: 0 } } }).png().toFile(join(dir, "dataset", `${name}.png`));
    writeFileSync(join(dir, "dataset", `${name}.txt`), `txcl photo ${i}`);
  }
  store = openRunStore({ projectDir: dir });
});
afterAll(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function contractFor(base: Record<string, unknown>, trainer: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const text = stringify({
    version: 1,
    name: "txcl",
    base,
    trainer,
    target: "character",
    dataset: { path: "./dataset" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 100, save_every: 25, optimizer: "adamw" },
    limits: { max_cost_usd: 5, max_walltime_hours: 2 },
    ...extra,
  });
  return parseContractText({ text, file: "lora.yaml" });
}

describe("buildTrainJob with the real compilers", () => {
  it("diffusers: a worker request in the run folder, JSON-lines parser, resume from the latest checkpoint", async () => {
    const contract = contractFor({ model: "sdxl", path: "./tiny" }, { name: "diffusers" });
    const run = store.create({ trainer: "diffusers" });
    const job = await buildTrainJob({ contract, contractDir: dir, plan: planRun(contract), run });
    if (job.kind !== "process") throw new Error("expected a process job");
    expect(job.args).toEqual(["-u", "-m", "loraspec_worker", "train", join(run.runDir, "worker-request.json")]);
    expect(job).toMatchObject({ parser: "worker-jsonl", totalSteps: 100, maxWalltimeHours: 2, resume: { kind: "worker-request" } });
    const request = JSON.parse(job.files!["worker-request.json"]!);
    expect(request).toMatchObject({ arch: "sdxl", base: join(dir, "tiny"), dataset: join(dir, "dataset"), steps: 100, save_every: 25, trigger_word: "txcl" });
    expect(request.output_dir).toBe(join(run.runDir, "output"));
  });

  it("diffusers: a compiled run keeps torch.compile's caches under loraspec's cache folder (issue 22)", async () => {
    const extra = { hardware: { kind: "local", gpu: "H200", vram_gb: 141 }, hyperparameters: { learning_rate: 1e-4, steps: 2000, save_every: 250, optimizer: "adamw" } };
    const contract = contractFor({ model: "flux1-dev", path: "./tiny" }, { name: "diffusers" }, extra);
    const job = await buildTrainJob({ contract, contractDir: dir, plan: planRun(contract), run: store.create({ trainer: "diffusers" }), cacheDir: join(dir, "cache") });
    if (job.kind !== "process") throw new Error("expected a process job");
    const request = JSON.parse(job.files!["worker-request.json"]!);
    expect(request.compile).toBe(true);
    expect(request.compile_cache_dir).toBe(join(dir, "cache", "compile"));
  });

  it("dataset.reg_path: the worker gets the folder, kohya its own copy as an is_reg subset", async () => {
    const extra = { dataset: { path: "./dataset", reg_path: "./dataset/sub" } };
    const diffusers = contractFor({ model: "sdxl", path: "./tiny" }, { name: "diffusers" }, extra);
    const job = await buildTrainJob({ contract: diffusers, contractDir: dir, plan: planRun(diffusers), run: store.create({ trainer: "diffusers" }) });
    if (job.kind !== "process") throw new Error("expected a process job");
    expect(JSON.parse(job.files!["worker-request.json"]!).reg_dataset).toBe(join(dir, "dataset", "sub"));
    const kohya = contractFor({ model: "sdxl", path: "/models/sdxl.safetensors" }, { name: "kohya" }, extra);
    const run = store.create({ trainer: "kohya" });
    const kjob = await buildTrainJob({ contract: kohya, contractDir: dir, plan: planRun(kohya), run, trainerDir: () => ({ trainerDir: "/opt/s", venvDir: "/opt/s/.venv" }) });
    if (kjob.kind !== "process") throw new Error("expected a process job");
    expect(kjob.files!["dataset.toml"]).toContain(join(run.runDir, "reg"));
    expect(readFileSync(join(run.runDir, "reg", "a.txt"), "utf8")).toBe("txcl photo 2");
  });

  it("kohya: dataset and args TOML inside the run folder, accelerate launch, resume from the newest state dir", async () => {
    const contract = contractFor({ model: "sdxl", path: "/models/sdxl.safetensors" }, { name: "kohya" });
    const run = store.create({ trainer: "kohya" });
    const job = await buildTrainJob({
      contract,
      contractDir: dir,
      plan: planRun(contract),
      run,
      trainerDir: () => ({ trainerDir: "/opt/sd-scripts", venvDir: "/opt/sd-scripts/.venv" }),
    });
    if (job.kind !== "process") throw new Error("expected a process job");
    expect(Object.keys(job.files!).sort()).toEqual(["args.toml", "dataset.toml"]);
    expect(job.command).toBe("/opt/sd-scripts/.venv/bin/accelerate");
    expect(job.args).toContain("/opt/sd-scripts/sdxl_train_network.py");
    expect(job.files!["args.toml"]).toMatch(/save_state = true/);
    expect(job).toMatchObject({ parser: "kohya", output: join(run.runDir, "output", "txcl.safetensors") });
    expect(job.resume).toEqual({ kind: "kohya-state", outputDir: join(run.runDir, "output"), outputName: "txcl" });
    // The trainer reads (and caches into) the run's own copy of the dataset, never the user's folder.
    expect(job.files!["dataset.toml"]).toContain(join(run.runDir, "dataset"));
    expect(readFileSync(join(run.runDir, "dataset", "sub", "a.txt"), "utf8")).toBe("txcl photo 2");
    // No samples.every: sd-scripts renders none, nothing to watch.
    expect(job.samples).toBeUndefined();
  });

  it("kohya and ai-toolkit: the folder their own sample images appear in, inside the run folder, with the prompt file's order", async () => {
    const samples = { samples: { every: 50, prompts: ["a photo of {trigger}"], seeds: [1, 2] } };
    const kohya = contractFor({ model: "sdxl", path: "/models/sdxl.safetensors" }, { name: "kohya" }, samples);
    const krun = store.create({ trainer: "kohya" });
    const kjob = await buildTrainJob({ contract: kohya, contractDir: dir, plan: planRun(kohya), run: krun, trainerDir: () => ({ trainerDir: "/opt/s", venvDir: "/opt/s/.venv" }) });
    if (kjob.kind !== "process") throw new Error("expected a process job");
    expect(kjob.samples).toEqual({ naming: "kohya", dir: join(krun.runDir, "output", "sample"), prefix: "txcl", items: [{ prompt: "a photo of txcl", seed: 1 }, { prompt: "a photo of txcl", seed: 2 }], totalSteps: 100 });
    expect(kjob.files!["sample_prompts.txt"]).toMatch(/a photo of txcl --w \d+ --h \d+ --d 1 [^\n]*\na photo of txcl [^\n]*--d 2 /);
    const aitk = contractFor({ model: "flux1-dev", quantize: "fp8" }, { name: "ai-toolkit" }, samples);
    const arun = store.create({ trainer: "ai-toolkit" });
    const ajob = await buildTrainJob({ contract: aitk, contractDir: dir, plan: planRun(aitk), run: arun, trainerDir: () => ({ trainerDir: "/opt/a", venvDir: "/opt/a/.venv" }) });
    if (ajob.kind !== "process") throw new Error("expected a process job");
    expect(ajob.samples).toMatchObject({ naming: "ai-toolkit", dir: join(arun.runDir, "output", "txcl", "samples"), totalSteps: 100 });
  });

  it("ai-toolkit: the job YAML, automatic resume in the same folder", async () => {
    const contract = contractFor({ model: "flux1-dev", quantize: "fp8" }, { name: "ai-toolkit" });
    const run = store.create({ trainer: "ai-toolkit" });
    const job = await buildTrainJob({
      contract,
      contractDir: dir,
      plan: planRun(contract),
      run,
      trainerDir: () => ({ trainerDir: "/opt/ai-toolkit", venvDir: "/opt/ai-toolkit/.venv" }),
    });
    if (job.kind !== "process") throw new Error("expected a process job");
    expect(job.parser).toBe("ai-toolkit");
    expect(job.resume).toEqual({ kind: "automatic" });
    expect(Object.values(job.files!).join("\n")).toMatch(/arch: flux|name_or_path/);
  });

  it("fal: endpoint input plus a flat dataset ZIP of images and same-name .txt captions", async () => {
    const contract = contractFor({ model: "flux1-dev" }, { name: "fal" }, { hardware: { kind: "fal" } });
    const run = store.create({ trainer: "fal" });
    const plan = planRun(contract);
    const job = await buildTrainJob({ contract, contractDir: dir, plan, run });
    if (job.kind !== "fal") throw new Error("expected a fal job");
    expect(job).toMatchObject({ endpoint: "fal-ai/flux-lora-fast-training", archive: { field: "images_data_url" }, cost: { maxCostUsd: 5 } });
    expect(job.input).toMatchObject({ trigger_word: "txcl", steps: 100 });
    const names = await zipNames(job.archive!.path);
    // packZip flattens sub-folders with "__" (sub/a.png -> sub__a.png), in sorted order.
    expect(names).toEqual(["a.png", "a.txt", "b.png", "b.txt", "sub__a.png", "sub__a.txt"]);
    expect(readFileSync(job.archive!.path).subarray(0, 2).toString()).toBe("PK");
  });
});

function zipNames(path: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true }, (error, zip) => {
      if (error || !zip) return reject(error);
      const names: string[] = [];
      zip.on("entry", (entry: { fileName: string }) => {
        names.push(entry.fileName);
        zip.readEntry();
      });
      zip.on("end", () => resolve(names));
      zip.readEntry();
    });
  });
}

describe("buildTrainJob launch path for kohya (helper TRAINERS)", () => {
  it("checks the device before copying anything and writes the tokenizer cache into args.toml", async () => {
    const contract = contractFor({ model: "sdxl", path: "/models/sdxl.safetensors" }, { name: "kohya" }, { hardware: { gpus: 2 } });
    const seen: unknown[] = [];
    const dirs = () => ({ trainerDir: "/opt/s", venvDir: "/opt/s/.venv", tokenizerCacheDir: "/opt/s/tokenizers" });
    const job = await buildTrainJob({ contract, contractDir: dir, plan: planRun(contract), run: store.create({ trainer: "kohya" }), trainerDir: dirs, checkDevice: async (p) => void seen.push(p) });
    if (job.kind !== "process") throw new Error("expected a process job");
    expect(seen).toEqual([{ trainer: "kohya", venvDir: "/opt/s/.venv", gpus: 2, gpu: undefined }]);
    expect(job.files!["args.toml"]).toContain('tokenizer_cache_dir = "/opt/s/tokenizers"');
    const refused = buildTrainJob({
      contract,
      contractDir: dir,
      plan: planRun(contract),
      run: store.create({ trainer: "kohya" }),
      trainerDir: dirs,
      checkDevice: async () => {
        throw Object.assign(new Error("no CUDA"), { code: "E_NOT_SUPPORTED" });
      },
    });
    await expect(refused).rejects.toMatchObject({ code: "E_NOT_SUPPORTED" });
  });
});
