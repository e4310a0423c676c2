import { existsSync } from "node:fs";
import { resolveStackLora } from "../contract/contract-files.js";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { baseSource } from "@loraspec/core/contract/base-path.js";
import { ValidationSchema } from "@loraspec/core/contract/schema.js";
import { LoraspecError } from "@loraspec/core/errors.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { exportValidationScript } from "@loraspec/core/validate/export-script.js";
import type { ValidationTarget } from "@loraspec/core/validate/plan-validation.js";
import { defaultRenderSampling, defaultRenderSide } from "@loraspec/core/validate/render-flags.js";
import { loadContract } from "../contract/load-contract.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { checkOutputFile } from "../fs/file-operands.js";
import { assertOutputIsNew } from "../lora/same-file.js";
import { diffusersBaseProblem } from "../project/base-load-form.js";
import { looksLocal } from "../project/preflight-base.js";

export interface WriteValidationScriptParams {
  contractPath?: string;
  cwd?: string;
  lora: string;
  out: string;
  force?: boolean;
  /** Without a contract. */
  trigger?: string;
  target?: ValidationTarget;
  base?: string;
  steps?: number;
  guidance?: number;
  width?: number;
  height?: number;
  now?: () => Date;
}

/** `loraspec export-script`: the rubric as a standalone diffusers script (never overwrites without force). */
export async function writeValidationScript(params: WriteValidationScriptParams): Promise<{ path: string; bytes: number; warnings?: string[] }> {
  const cwd = params.cwd ?? process.cwd();
  const out = resolve(cwd, params.out);
  await checkOutputFile(out, "--output", "script file");
  if (existsSync(out) && !params.force) {
    throw new LoraspecError("E_FILE_EXISTS", `${params.out} exists`, { file: params.out, hint: "pass --force to replace it, or -o another name" });
  }
  const lora = resolve(cwd, params.lora);
  if (!existsSync(lora)) throw new LoraspecError("E_FILE_NOT_FOUND", `LoRA file not found: ${params.lora}`, { field: "--lora" });
  const contractPath = params.contractPath ?? "lora.yaml";
  const haveContract = params.contractPath !== undefined || existsSync(resolve(cwd, contractPath)) || !params.trigger;
  const loaded = haveContract ? await loadContract({ path: contractPath, cwd }) : undefined;
  // The script never replaces a file it reads: --force is for an old script, not the contract or the LoRA.
  await assertOutputIsNew({ output: out, inputs: [lora, ...(loaded ? [loaded.file] : [])], field: "--output", overwrite: true });
  const contract = loaded?.contract;
  const rubric = { ...(contract?.validation ?? ValidationSchema.parse({})) };
  const dir = loaded?.dir ?? cwd;
  rubric.stack = rubric.stack.map((s) => ({ ...s, lora: resolveStackLora(dir, s.lora) }));
  const model = contract ? getBaseModel(contract.base.model) : undefined;
  const baseRaw = params.base ?? contract?.base.path ?? model?.hfRepo;
  if (!baseRaw) throw new LoraspecError("E_USAGE", "no base model", { hint: "pass --base or a contract" });
  // validate's rule (core contract/base-path.ts): --base is the cwd's, base.path the contract folder's;
  // ./x, ../x, /x, ~/x are local (made absolute), the rest a Hugging Face id, with a warning when a folder of that name is there.
  const from = params.base ? cwd : dir;
  const source = baseSource(baseRaw, { contractDir: resolve(from), home: homedir() });
  const base = source.kind === "local" ? source.path : source.id;
  const local = source.kind === "hub" && (params.base !== undefined || contract?.base.path !== undefined) ? looksLocal(baseRaw, from, params.base ? "--base" : "base.path", "render with it") : undefined;
  const trigger = params.trigger ?? contract?.trigger.word;
  if (!trigger) throw new LoraspecError("E_USAGE", "no trigger word", { hint: "pass --trigger WORD or a contract" });
  // The size validate renders at (core render-flags.ts defaultRenderSide): the contract's training resolution.
  const side = defaultRenderSide(contract?.dataset.resolution, model?.nativeResolution).side;
  const sampling = defaultRenderSampling(model?.id);
  const text = exportValidationScript({
    name: contract?.name ?? "lora",
    base,
    lora,
    trigger,
    target: params.target ?? contract?.target ?? "character",
    rubric,
    width: params.width ?? side,
    height: params.height ?? side,
    // The script's defaults (its users pass --steps/--guidance at run time): the base's sampling, as validate renders.
    steps: params.steps ?? sampling.steps,
    guidance: params.guidance ?? sampling.guidance,
    date: (params.now?.() ?? new Date()).toISOString().slice(0, 10),
  });
  // The script opens the base with DiffusionPipeline.from_pretrained: a folder of single files (Kohya's FLUX.1) or one file it cannot.
  const problem = source.kind === "local" ? await diffusersBaseProblem(source.path, model?.family ?? "", false) : undefined;
  const warnings = [
    ...(local ? [local.message] : []),
    ...(problem ? [`the script loads the base with DiffusionPipeline.from_pretrained; '${base}' is ${problem}: pass --base with a diffusers folder or Hugging Face id (here, or to the script at run time)`] : []),
  ];
  await atomicWrite(out, text);
  return { path: out, bytes: Buffer.byteLength(text), ...(warnings.length > 0 ? { warnings } : {}) };
}
