import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseSource, type BaseSource } from "@loraspec/core/contract/base-path.js";
import { ContractSchema, type Contract } from "@loraspec/core/contract/schema.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { checkProject } from "@loraspec/engine/project/check-project.js";
import { preflightBase } from "@loraspec/engine/project/preflight-base.js";
import { buildTrainJob } from "@loraspec/engine/run/build-train-job.js";
import { openRunStore, type RunStore } from "@loraspec/engine/run/run-store.js";
import type { RunWorkerFn } from "@loraspec/engine/samplers/worker-sampler.js";
import { validateProject } from "@loraspec/engine/validate/validate-project.js";
import { writeValidationScript } from "@loraspec/engine/validate/write-validation-script.js";

// The class: "is base.path a local path or a Hugging Face id?" has one answer (core contract/base-path.ts)
// that check's preflight, train's job (the worker request, the kohya and ai-toolkit configs), validate
// and export-script all give. Before: five rules, so `~/x` passed check and reached the worker unexpanded,
// and `models/x` was a folder for validate but a hub id for check and train.
let root: string;
let contractDir: string;
let home: string;
let store: RunStore;
const savedHome = process.env.HOME;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-base-source-"));
  contractDir = join(root, "proj", "sub");
  home = join(root, "home");
  await mkdir(join(contractDir, "dataset"), { recursive: true });
  await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 10, g: 0, b: 0 } } }).png().toFile(join(contractDir, "dataset", "a.png"));
  await writeFile(join(contractDir, "dataset", "a.txt"), "txcl photo");
  await writeFile(join(contractDir, "lora.safetensors"), "x");
  // A folder named like the hub-form value: it stays a hub id, with a warning.
  await mkdir(join(contractDir, "models", "toy-sdxl"), { recursive: true });
  // A diffusers folder as far as validate's own base check reads it (preflight-base.ts diffusersBaseProblem): no components listed.
  await writeFile(join(contractDir, "models", "toy-sdxl", "model_index.json"), JSON.stringify({ _class_name: "StableDiffusionXLPipeline" }));
  // os.homedir() reads $HOME: `~` expands to a folder of the test's own.
  process.env.HOME = home;
  store = openRunStore({ projectDir: contractDir });
});
afterAll(async () => {
  process.env.HOME = savedHome;
  store.close();
  await rm(root, { recursive: true, force: true });
});

const FORMS = ["./b", "../b", "/abs/b", "~/b", "~", "C:\\b", "C:/b", ".\\b", "..\\b", "org/name", "name", "models/toy-sdxl"];

const contractFor = (path: string, trainer = "diffusers"): Contract =>
  ContractSchema.parse({
    version: 1,
    name: "txcl",
    base: { model: "sdxl", path },
    trainer: { name: trainer },
    target: "character",
    dataset: { path: "./dataset" },
    trigger: { word: "txcl" },
    hyperparameters: { learning_rate: 1e-4, steps: 10, optimizer: "adamw" },
  });

const shown = (s: BaseSource) => (s.kind === "local" ? `local ${s.path}` : `hub ${s.id}`);

/** check's preflight: a local path that is not there is named (resolved) in base-weights-missing; a hub id in base-weights-download. */
async function fromPreflight(path: string): Promise<string> {
  const findings = await preflightBase({ contract: contractFor(path), contractDir, env: { HF_HUB_CACHE: join(root, "empty-cache") } });
  const missing = findings.find((f) => f.rule === "base-weights-missing");
  if (missing) return `local ${/ does not exist \((.*)\): the run would fail/.exec(missing.message)![1]}`;
  const download = findings.find((f) => f.rule === "base-weights-download")!;
  return `hub ${download.message.split(" is not in the local Hugging Face cache")[0]}`;
}

async function job(path: string, trainer: string) {
  const contract = contractFor(path, trainer);
  const run = store.create({ trainer: trainer as "diffusers" });
  const j = await buildTrainJob({ contract, contractDir, plan: planRun(contract), run, trainerDir: () => ({ trainerDir: "/opt/t", venvDir: "/opt/t/.venv" }), checkDevice: async () => {} });
  if (j.kind !== "process") throw new Error("expected a process job");
  return j.files!;
}

/** The base as the worker's render-jobs request names it: the worker stand-in records it and stops validate there. */
async function fromValidate(params: { base?: string; path: string; cwd: string }): Promise<{ base: string; warnings: string[] }> {
  await writeFile(join(contractDir, "lora.yaml"), stringify({ ...contractFor(params.path), hyperparameters: undefined }));
  let base = "";
  const runWorker: RunWorkerFn = async function* ({ request }) {
    base = (request as { base: string }).base;
    throw new Error("stop");
  };
  const warnings: string[] = [];
  try {
    for await (const e of validateProject({ contractPath: join(contractDir, "lora.yaml"), cwd: params.cwd, lora: join(contractDir, "lora.safetensors"), base: params.base, runWorker, width: 8, height: 8, steps: 1 }) as AsyncIterable<LoraspecEvent>) {
      if (e.type === "warning" && e.code === "W_BASE_PATH_LOOKS_LOCAL") warnings.push(e.message);
    }
  } catch (error) {
    if ((error as Error).message !== "stop") throw error;
  }
  return { base, warnings };
}

describe("base.path: local or Hugging Face id, one answer for every consumer", () => {
  it.each(FORMS)("%s", async (path) => {
    const expected = shown(baseSource(path, { contractDir, home }));
    const asWritten = (value: string) => (expected.startsWith("local ") ? `local ${value}` : `hub ${value}`);
    const seen: Record<string, string> = {};
    seen["check preflight"] = await fromPreflight(path);
    seen["train: worker request base"] = asWritten(JSON.parse((await job(path, "diffusers"))["worker-request.json"]!).base);
    const kohya = Object.values(parseToml((await job(path, "kohya"))["args.toml"]!) as Record<string, Record<string, unknown>>).find((section) => "pretrained_model_name_or_path" in section)!;
    seen["train: kohya pretrained_model_name_or_path"] = asWritten(kohya.pretrained_model_name_or_path as string);
    const aitkFiles = await job(path, "ai-toolkit");
    const aitk = parseYaml(Object.entries(aitkFiles).find(([name]) => name.endsWith(".yaml"))![1]) as { config: { process: Array<{ model: { name_or_path: string } }> } };
    seen["train: ai-toolkit name_or_path"] = asWritten(aitk.config.process[0]!.model.name_or_path);
    seen["validate base.path"] = asWritten((await fromValidate({ path, cwd: root })).base);
    // export-script reads the lora.yaml fromValidate just wrote.
    const script = await writeValidationScript({ cwd: root, contractPath: join(contractDir, "lora.yaml"), lora: join(contractDir, "lora.safetensors"), out: "v.py", force: true });
    const config = /CONFIG = json\.loads\("""([\s\S]*?)"""\)/.exec(await readFile(script.path, "utf8"))![1]!.replace(/\\\\/g, "\\");
    seen["export-script base"] = asWritten((JSON.parse(config) as { base: string }).base);
    // --base is the cwd's: from the contract's folder it is the same as base.path.
    seen["validate --base"] = asWritten((await fromValidate({ path: "org/other", base: path, cwd: contractDir })).base);
    expect(seen).toEqual(Object.fromEntries(Object.keys(seen).map((k) => [k, expected])));
  });

  it("the rule's table", () => {
    const at = { contractDir: "/p/c", home: "/h" };
    expect(Object.fromEntries([...FORMS, ".", "..", "~user/x", "~b", ".b", "org/name/../x", "C:\\m\\..\\x"].map((p) => [p, shown(baseSource(p, at))]))).toEqual({
      "./b": "local /p/c/b",
      "../b": "local /p/b",
      "/abs/b": "local /abs/b",
      "~/b": "local /h/b",
      "~": "local /h",
      "C:\\b": "local C:\\b",
      "C:/b": "local C:\\b",
      ".\\b": "local /p/c/b",
      "..\\b": "local /p/b",
      "org/name": "hub org/name",
      name: "hub name",
      "models/toy-sdxl": "hub models/toy-sdxl",
      ".": "local /p/c",
      "..": "local /p",
      "~user/x": "hub ~user/x",
      "~b": "hub ~b",
      ".b": "hub .b",
      "org/name/../x": "hub org/name/../x",
      "C:\\m\\..\\x": "local C:\\x",
    });
    expect(shown(baseSource(".\\b", { contractDir: "C:\\proj", home: "C:\\Users\\me" }))).toBe("local C:\\proj\\b");
    expect(shown(baseSource("~/b", { contractDir: "C:\\proj", home: "C:\\Users\\me" }))).toBe("local C:\\Users\\me\\b");
  });
});

describe("hub-form values that name a folder here", () => {
  it("check warns (base-path-looks-local) and still reads the hub id", async () => {
    const findings = await preflightBase({ contract: contractFor("models/toy-sdxl"), contractDir, env: { HF_HUB_CACHE: join(root, "empty-cache") } });
    expect(findings.map((f) => `${f.severity} ${f.rule}`)).toEqual(["warning base-path-looks-local", "info base-weights-download"]);
    expect(findings[0]!.message).toBe(`base.path 'models/toy-sdxl' is read as a Hugging Face id; a folder of that name is here (${join(contractDir, "models", "toy-sdxl")}): write ./models/toy-sdxl to train on it`);
    expect(findings[0]!.fix).toBe("Write ./models/toy-sdxl for the weights there (loraspec reads only ./, ../, /, ~/ and drive paths as local; anything else is a Hugging Face id).");
    expect(findings[0]!.field).toBe("base.path");
  });

  it("validate warns the same way (W_BASE_PATH_LOOKS_LOCAL), for base.path against the contract's folder and --base against the cwd", async () => {
    expect((await fromValidate({ path: "models/toy-sdxl", cwd: root })).warnings).toEqual([
      `base.path 'models/toy-sdxl' is read as a Hugging Face id; a folder of that name is here (${join(contractDir, "models", "toy-sdxl")}): write ./models/toy-sdxl to render with it`,
    ]);
    expect((await fromValidate({ path: "org/other", base: "sub/models/toy-sdxl", cwd: join(root, "proj") })).warnings).toEqual([
      `--base 'sub/models/toy-sdxl' is read as a Hugging Face id; a folder of that name is here (${join(contractDir, "models", "toy-sdxl")}): write ./sub/models/toy-sdxl to render with it`,
    ]);
    expect((await fromValidate({ path: "org/other", cwd: root })).warnings).toEqual([]);
    expect((await fromValidate({ path: "./models/toy-sdxl", cwd: root })).warnings).toEqual([]);
  });
});

describe("base.path ~/x end to end (check passed it, train handed the worker the literal ~/x)", () => {
  it("check finds the folder under $HOME and the worker request names it expanded", async () => {
    const base = join(home, "models", "sdxl");
    await mkdir(join(base, "unet"), { recursive: true });
    await writeFile(join(base, "model_index.json"), JSON.stringify({ _class_name: "StableDiffusionXLPipeline" }));
    await writeFile(join(contractDir, "lora.yaml"), stringify({ ...contractFor("~/models/sdxl"), hyperparameters: undefined }));
    const check = await checkProject({ path: join(contractDir, "lora.yaml"), env: { HF_HUB_CACHE: join(root, "empty-cache") } });
    expect(check.findings.filter((f) => f.rule.startsWith("base-"))).toEqual([]);
    expect(JSON.parse((await job("~/models/sdxl", "diffusers"))["worker-request.json"]!).base).toBe(base);
  });
});
