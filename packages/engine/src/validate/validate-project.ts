import { existsSync } from "node:fs";
import { resolveStackLora } from "../contract/contract-files.js";
import { readdir } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, extname, isAbsolute, join, resolve } from "node:path";
import { ValidationSchema, type Contract } from "@loraspec/core/contract/schema.js";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { getBaseModel, type BaseModelRecord } from "@loraspec/core/knowledge/base-models.js";
import { baseSource } from "@loraspec/core/contract/base-path.js";
import { WEB_IMAGE_EXTENSIONS as IMAGE_EXT } from "@loraspec/core/knowledge/image-formats.js";
import type { Candidate, RubricSpec, ValidationTarget } from "@loraspec/core/validate/plan-validation.js";
import { defaultRenderSampling, defaultRenderSide } from "@loraspec/core/validate/render-flags.js";
import { loadContract } from "../contract/load-contract.js";
import { diffusersBaseProblem } from "../project/base-load-form.js";
import { looksLocal } from "../project/preflight-base.js";
import { openRunStore, type RunRecord } from "../run/run-store.js";
import { createComfyuiSampler } from "../samplers/comfyui-sampler.js";
import { createFalSampler } from "../samplers/fal-sampler.js";
import type { Sampler, SampleSettings } from "../samplers/sampler.js";
import { createWorkerSampler, type RunWorkerFn } from "../samplers/worker-sampler.js";
import { readRunEventObjects } from "./read-loss-curve.js";
import { validateLora } from "./validate-lora.js";

export interface ValidateProjectParams {
  /** lora.yaml (default ./lora.yaml); optional with --lora and --trigger. */
  contractPath?: string;
  cwd?: string;
  /** A LoRA file to validate. */
  lora?: string;
  /** A run whose output (or, with checkpoints, every checkpoint) to validate. */
  runId?: string;
  checkpoints?: boolean;
  /** Without a contract: the trigger word and target. */
  trigger?: string;
  target?: ValidationTarget;
  /** Overrides: sampler, base model path, render settings. */
  sampler?: "worker" | "fal" | "comfyui";
  base?: string;
  width?: number;
  height?: number;
  steps?: number;
  guidance?: number;
  /** The text encoder's token length (T5/LLM bases; the worker sampler only). */
  maxSequenceLength?: number;
  scoreModel?: string;
  dinoModel?: string;
  device?: string;
  falKey?: string;
  falEndpoint?: string;
  comfyUrl?: string;
  comfyCheckpoint?: string;
  outDir?: string;
  inlineImages?: boolean;
  runWorker?: RunWorkerFn;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

// Worker `arch` per knowledge-base family (single-file bases need it).
const ARCH: Record<string, string> = { sdxl: "sdxl", flux1: "flux1", flux2: "flux2-klein" };
// fal LoRA inference endpoints per family (trainers.md §4: fal-ai/flux-lora, fal-ai/flux-2/lora).
const FAL_ENDPOINT: Record<string, string> = { flux1: "fal-ai/flux-lora", flux2: "fal-ai/flux-2/lora" };

async function listImages(dir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return [];
  }
  return entries.filter((f) => IMAGE_EXT.has(extname(f).toLowerCase())).sort().map((f) => join(dir, f));
}

/**
 * The checkpoints a run wrote, from its events.jsonl (`checkpoint` events), oldest first. Read line
 * by line; torn, foreign and over-long lines are skipped (the loss curve's read names an over-long
 * one: validate-lora.ts).
 */
async function runCheckpoints(eventsFile: string, runDir: string): Promise<Candidate[]> {
  const out = new Map<number, Candidate>();
  for await (const e of readRunEventObjects(eventsFile)) {
    if (e.type === "checkpoint" && typeof e.step === "number" && typeof e.path === "string" && !e.path.includes("\0")) {
      const path = isAbsolute(e.path) ? e.path : resolve(runDir, e.path);
      // A checkpoint may be a folder holding the LoRA (the worker: lora.safetensors; diffusers: pytorch_lora_weights.safetensors).
      const inFolder = ["lora.safetensors", "pytorch_lora_weights.safetensors"].map((f) => join(path, f)).find((f) => existsSync(f));
      const file = inFolder ?? path;
      if (existsSync(file)) out.set(e.step, { name: `step ${e.step}`, path: file, step: e.step });
    }
  }
  return [...out.values()].sort((a, b) => (a.step ?? 0) - (b.step ?? 0));
}

/**
 * `loraspec validate`: resolves the contract, the LoRA (a file, a run's output, or its
 * checkpoints), the training images and the sampler, then runs validateLora.
 */
export async function* validateProject(params: ValidateProjectParams): AsyncGenerator<LoraspecEvent> {
  const cwd = params.cwd ?? process.cwd();
  if (!params.lora && !params.runId) {
    throw new LoraspecError("E_USAGE", "validate needs --lora FILE or --run ID", { hint: "loraspec validate --lora out/txcl.safetensors" });
  }
  const { contract, contractDir, contractText, contractPath } = await findContract(params, cwd);
  const validation = contract ? contract.validation : ValidationSchema.parse({});
  const rubric: RubricSpec = { ...validation, stack: [...validation.stack] };
  const trigger = params.trigger ?? contract?.trigger.word;
  if (!trigger) throw new LoraspecError("E_USAGE", "no trigger word", { hint: "pass --trigger WORD or a contract" });
  const target: ValidationTarget = params.target ?? contract?.target ?? "character";
  const model = contract ? getBaseModel(contract.base.model) : undefined;
  const inContract = (p: string) => resolveStackLora(contractDir, p);
  rubric.stack = resolveStack(rubric.stack, contractDir, contractPath);

  const { candidates, outDir, eventsFile, weights } = await findCandidates(params, cwd, contractDir, rubric);
  const reference = contract ? await listImages(inContract(contract.dataset.path)) : [];
  const size = defaultRenderSide(contract?.dataset.resolution, model?.nativeResolution);
  const kind = params.sampler ?? validation.sampler ?? "worker";
  const sampling = defaultRenderSampling(model?.id);
  const settings = renderSettings(params, size, kind, model, sampling);
  const sampler = yield* openSampler({ params, kind, cwd, contract, contractDir, model, outDir });

  if (params.width === undefined || params.height === undefined) {
    const given = params.width !== undefined ? `--width ${params.width}, height ` : params.height !== undefined ? `--height ${params.height}, width ` : "";
    yield { type: "log", level: "info", message: `rendering at ${settings.width}x${settings.height}: ${given}${size.why} (--width/--height to change)` };
  }
  if (params.steps === undefined || params.guidance === undefined) {
    yield { type: "log", level: "info", message: `${settings.steps} steps${settings.guidance !== undefined ? `, guidance ${settings.guidance}` : ""}: ${sampling.why} (--steps/--guidance to change)` };
  }
  yield* validateLora({
    name: contract?.name ?? candidates[0]!.name,
    rubric,
    trigger,
    target,
    candidates,
    weights,
    stack: !params.checkpoints,
    reference,
    outDir,
    sampler,
    settings,
    scoreModel: params.scoreModel,
    dinoModel: params.dinoModel,
    device: params.device,
    runWorker: params.runWorker,
    contractText,
    eventsFile,
    inlineImages: params.inlineImages,
    signal: params.signal,
  });
}

/**
 * The contract, when one is named, lora.yaml exists, or there is no --trigger to go without it;
 * else none, and the working folder stands in for its folder.
 */
async function findContract(params: ValidateProjectParams, cwd: string) {
  let contract: Contract | undefined;
  let contractDir = cwd;
  let contractText: string | undefined;
  const contractPath = params.contractPath ?? "lora.yaml";
  if (params.contractPath || existsSync(resolve(cwd, contractPath)) || !params.trigger) {
    const loaded = await loadContract({ path: contractPath, cwd });
    contract = loaded.contract;
    contractDir = loaded.dir;
    contractText = loaded.text;
  }
  return { contract, contractDir, contractText, contractPath };
}

/**
 * The stacked LoRAs with their paths resolved against the contract's folder (contract/contract-files.ts, as check
 * resolves them: its validation-stack-missing finding is this refusal, before the run); a local one must exist.
 */
export function resolveStack(stack: RubricSpec["stack"], contractDir: string, contractPath: string): RubricSpec["stack"] {
  const resolved = stack.map((s) => ({ ...s, lora: resolveStackLora(contractDir, s.lora) }));
  resolved.forEach((s, i) => {
    if (!/^https?:\/\//.test(s.lora) && !existsSync(s.lora)) {
      throw new LoraspecError("E_FILE_NOT_FOUND", `stacked LoRA not found: ${s.lora}`, { field: `validation.stack[${i}].lora`, file: contractPath, hint: "fix the path (relative paths are from the contract's folder) or remove the entry; `loraspec check` names it too" });
    }
  });
  return resolved;
}

interface Candidates {
  candidates: Candidate[];
  /** Where the validation report and images go. */
  outDir: string;
  /** The run's events.jsonl (validating a run). */
  eventsFile?: string;
  /** The weights to render at, when not the rubric's sweep (checkpoints). */
  weights?: number[];
}

/** What to validate: the --lora file, or the run's output (or, with checkpoints, every checkpoint). */
async function findCandidates(params: ValidateProjectParams, cwd: string, contractDir: string, rubric: RubricSpec): Promise<Candidates> {
  if (!params.runId) {
    const path = resolve(cwd, params.lora as string);
    if (!existsSync(path)) throw new LoraspecError("E_FILE_NOT_FOUND", `LoRA file not found: ${params.lora}`, { field: "--lora" });
    const outDir = params.outDir ? resolve(cwd, params.outDir) : join(contractDir, ".loraspec", "validations", basename(path).replace(/\.[^.]+$/, ""));
    return { candidates: [{ name: basename(path), path }], outDir };
  }
  const store = openRunStore({ projectDir: contractDir });
  let run;
  try {
    run = store.get(params.runId);
  } finally {
    store.close();
  }
  const eventsFile = join(run.runDir, "events.jsonl");
  const outDir = params.outDir ? resolve(cwd, params.outDir) : join(run.runDir, "validation");
  if (params.checkpoints) {
    const candidates = await checkpointCandidates(run, eventsFile);
    // One weight per checkpoint keeps the comparison affordable: the contract's self weight.
    const weights = [rubric.weight_sweep.includes(1) ? 1 : (rubric.weight_sweep.at(-1) ?? 1)];
    return { candidates, outDir, eventsFile, weights };
  }
  if (!run.outputPath || !existsSync(run.outputPath)) {
    throw new LoraspecError("E_NO_OUTPUT", `run ${run.id} has no LoRA file`, { hint: "validate a checkpoint with --checkpoints, or pass --lora" });
  }
  return { candidates: [{ name: basename(run.outputPath), path: run.outputPath }], outDir, eventsFile };
}

/** A run's checkpoints on disk, oldest first, then its final output when that is not one of them. */
async function checkpointCandidates(run: RunRecord, eventsFile: string): Promise<Candidate[]> {
  const candidates = await runCheckpoints(eventsFile, run.runDir);
  if (run.outputPath && existsSync(run.outputPath) && !candidates.some((c) => c.path === run.outputPath)) {
    candidates.push({ name: "final", path: run.outputPath, step: run.step ?? (candidates.at(-1)?.step ?? 0) + 1 });
  }
  if (candidates.length === 0) throw new LoraspecError("E_NO_OUTPUT", `run ${run.id} has no checkpoints on disk`, { hint: "set hyperparameters.save_every" });
  return candidates;
}

/** Size, steps and guidance to render with; --max-sequence-length only where the sampler and base take one. */
function renderSettings(params: ValidateProjectParams, size: { side: number }, kind: SamplerKind, model: BaseModelRecord | undefined, sampling: { steps: number; guidance?: number }): SampleSettings {
  const settings: SampleSettings = {
    width: params.width ?? size.side,
    height: params.height ?? size.side,
    steps: params.steps ?? sampling.steps,
  };
  const guidance = params.guidance ?? sampling.guidance;
  if (guidance !== undefined) settings.guidance = guidance;
  if (params.maxSequenceLength !== undefined) {
    if (kind !== "worker") throw new LoraspecError("E_USAGE", `--max-sequence-length is a setting of the worker sampler, not ${kind}'s`, { field: "--max-sequence-length" });
    if (model?.family === "sdxl") throw new LoraspecError("E_USAGE", `--max-sequence-length: ${model.label} has CLIP text encoders only (a fixed 77 tokens)`, { field: "--max-sequence-length" });
    settings.maxSequenceLength = params.maxSequenceLength;
  }
  return settings;
}

type SamplerKind = NonNullable<ValidateProjectParams["sampler"]>;

interface SamplerContext {
  params: ValidateProjectParams;
  kind: SamplerKind;
  cwd: string;
  contract: Contract | undefined;
  contractDir: string;
  model: BaseModelRecord | undefined;
  outDir: string;
}

/** The sampler that renders the candidates: the worker's, fal's or a ComfyUI server's. */
async function* openSampler(o: SamplerContext): AsyncGenerator<LoraspecEvent, Sampler> {
  const { params, contract, model } = o;
  if (o.kind === "worker") return yield* openWorkerSampler(o);
  if (o.kind === "fal") {
    const endpoint = params.falEndpoint ?? (model ? FAL_ENDPOINT[model.family] : undefined);
    if (!endpoint) {
      throw new LoraspecError("E_NOT_SUPPORTED", `no fal LoRA inference endpoint known for ${contract?.base.model ?? "this base"}`, { hint: "pass --fal-endpoint or use the worker sampler" });
    }
    return createFalSampler({ config: { endpoint, credentials: params.falKey }, fetch: params.fetch });
  }
  if (!params.comfyCheckpoint) throw new LoraspecError("E_USAGE", "the ComfyUI sampler needs --comfy-checkpoint (the base's file name in ComfyUI's models/checkpoints)");
  return createComfyuiSampler({ config: { url: params.comfyUrl ?? "http://127.0.0.1:8188", checkpoint: params.comfyCheckpoint }, fetch: params.fetch });
}

/** The worker sampler on --base, the contract's base.path or the base model's hub repo; warns when a hub id looks like a local path. */
async function* openWorkerSampler(o: SamplerContext): AsyncGenerator<LoraspecEvent, Sampler> {
  const { params, contract, model } = o;
  const base = params.base ?? contract?.base.path ?? model?.hfRepo;
  if (!base) throw new LoraspecError("E_USAGE", "no base model", { hint: "pass --base (a diffusers folder or Hugging Face id) or a contract" });
  // --base is relative to where the user runs the command; base.path to the contract's folder.
  // One rule with check and train (core contract/base-path.ts): ./x, ../x, /x, ~/x are local, the rest a hub id.
  const from = params.base ? o.cwd : o.contractDir;
  const source = baseSource(base, { contractDir: resolve(from), home: homedir() });
  const resolvedBase = source.kind === "local" ? source.path : source.id;
  const local = source.kind === "hub" && (params.base !== undefined || contract?.base.path !== undefined) ? looksLocal(base, from, params.base ? "--base" : "base.path", "render with it") : undefined;
  if (local) yield { type: "warning", code: "W_BASE_PATH_LOOKS_LOCAL", message: local.message };
  // Before any worker starts: a base the sampler's diffusers loader cannot open (Kohya's FLUX.1 single files).
  const problem = source.kind === "local" && model ? await diffusersBaseProblem(source.path, model.family) : undefined;
  if (problem) {
    throw new LoraspecError("E_USAGE", `the worker sampler loads the base as a diffusers pipeline; ${params.base ? "--base" : "base.path"} '${base}' is ${problem}`, {
      field: params.base ? "--base" : "base.path",
      hint: `pass --base with a diffusers folder of ${model!.label} or ${model!.hfRepo}, or --sampler comfyui${contract ? " (check warns: validation-base-not-diffusers)" : ""}`,
    });
  }
  return createWorkerSampler({
    config: { base: resolvedBase, arch: model ? ARCH[model.family] : undefined, device: params.device, logFile: join(o.outDir, "worker.log") },
    runWorker: params.runWorker,
  });
}
