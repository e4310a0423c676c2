import { existsSync, statSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { baseSource } from "@loraspec/core/contract/base-path.js";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { getBaseModel, type BaseModelRecord } from "@loraspec/core/knowledge/base-models.js";
import { signatureOfClass, signatureOfKeys, type BaseSignature } from "@loraspec/core/knowledge/base-signatures.js";
import type { Finding } from "@loraspec/core/lint/finding.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { openSafetensors } from "../lora/safetensors-file.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readSmallText } from "../fs/read-small-file.js";
import { cachedSnapshot, hfHubCache } from "./hf-cache.js";
import { loadFormFindings, localLayout, outputFormatFindings, validationFindings } from "./base-load-form.js";

export interface PreflightBaseParams {
  contract: Contract;
  /** The contract's folder: a local base.path resolves against it. */
  contractDir: string;
  /** Environment for the Hugging Face cache location (HF_HUB_CACHE, HF_HOME). */
  env?: NodeJS.ProcessEnv;
}

const BASE_PATH_SOURCE = "ours: core contract/base-path.ts (local iff ./, ../, /, ~/ or a drive; diffusers' from_pretrained would look relative to the worker's folder, not the contract's)";
const SOURCE = "ours: check reads model_index.json / the denoiser's config.json / a single file's safetensors header (no weights); classes: knowledge/base-signatures.ts";

/**
 * The warning when a value read as a Hugging Face id (`models/sdxl`) names a folder or file that is
 * there: the trainer would download (or fail to find) the hub repo, not open it. One home for check
 * (base.path, against the contract's folder) and validate (--base against the cwd, base.path against
 * the contract's folder). undefined when nothing of that name is there.
 */
export function looksLocal(given: string, dir: string, what: "base.path" | "--base", use: string): { message: string; fix: string; found: string } | undefined {
  const found = resolve(dir, given);
  if (!existsSync(found)) return undefined;
  return {
    message: `${what} '${given}' is read as a Hugging Face id; a ${statSync(found).isDirectory() ? "folder" : "file"} of that name is here (${found}): write ./${given} to ${use}`,
    fix: `Write ./${given} for the weights there (loraspec reads only ./, ../, /, ~/ and drive paths as local; anything else is a Hugging Face id).`,
    found,
  };
}


/**
 * Preflight of the base weights, before any GPU time: they resolve (a local folder or file, or an
 * HF id in the local cache; a note when the first run must download them), their architecture
 * is `base.model`'s, they are in a form the contract's trainer loads (knowledge/base-load-forms.ts:
 * a whole diffusers folder, Kohya's FLUX.1 files by role and variant, ...), validate's worker sampler
 * can load them (a warning otherwise), and `output.format` can convert a LoRA of their layer sizes.
 * Reads folder listings, JSON configs and safetensors headers only.
 */
export async function preflightBase({ contract, contractDir, env = process.env }: PreflightBaseParams): Promise<Finding[]> {
  const model = getBaseModel(contract.base.model);
  if (!model) return [];
  // fal trains on its own copy of the base and downloads nothing here: only validate's worker sampler loads it on this machine.
  const hosted = contract.trainer.name === "fal";
  if (hosted && contract.validation.sampler !== "worker") return [];
  const given = contract.base.path ?? model.hfRepo;
  const source = baseSource(given, { contractDir: resolve(contractDir), home: homedir() });
  if (source.kind === "local") {
    const path = source.path;
    const info = await stat(path).catch(() => undefined);
    if (!info) {
      return [
        hosted
          ? {
              // fal never receives base.path (lint trainer-ignores-field): the run trains; validate's local renders would stop.
              rule: "base-weights-missing",
              severity: "warning",
              message: `base.path '${given}' does not exist (${path}): fal trains on its own copy of the base and ignores base.path, but \`loraspec validate\` renders locally with it (validation.sampler: worker) and would stop there.`,
              fix: `Point base.path at the ${model.label} weights for validate's local renders, remove it (validate then uses ${model.hfRepo}), or set validation.sampler: fal.`,
              source: SOURCE,
              field: "base.path",
            }
          : {
              rule: "base-weights-missing",
              severity: "error",
              message: `base.path '${given}' does not exist (${path}): the run would fail when the trainer loads the base.`,
              fix: `Point base.path at the ${model.label} weights (a diffusers folder, or a .safetensors file), or leave it out to use ${model.hfRepo}.`,
              source: SOURCE,
              field: "base.path",
            },
      ];
    }
    const arch = checkArchitecture(await identify(path, info.isDirectory()), model, given, hosted);
    // A base of another architecture fails anyway: its form is not worth a second error.
    if (arch.some((f) => f.severity === "error")) return arch;
    const layout = await localLayout(path, info.isDirectory());
    // fal's LoRA is trained on fal's own base, never on these weights: their layer sizes say nothing about converting it.
    return [...arch, ...(await loadFormFindings(contract, model, given, path, layout, env)), ...validationFindings(contract, given, layout), ...(hosted ? [] : await outputFormatFindings(contract, model, given, path, layout))];
  }
  const local = contract.base.path === undefined ? undefined : looksLocal(given, contractDir, "base.path", "train on it");
  const looks: Finding[] = local ? [{ rule: "base-path-looks-local", severity: "warning", message: local.message, fix: local.fix, source: BASE_PATH_SOURCE, field: "base.path" }] : [];
  const snapshot = await cachedSnapshot(given, env);
  if (!snapshot) {
    return [
      ...looks,
      {
        rule: "base-weights-download",
        severity: "info",
        message: hosted
          ? `${given} is not in the local Hugging Face cache (${hfHubCache(env)}): fal trains on its own copy (nothing is downloaded to train), but \`loraspec validate\` renders with the local worker (validation.sampler: worker), which downloads it the first time.`
          : `${given} is not in the local Hugging Face cache (${hfHubCache(env)}): the first run downloads it before training starts.`,
        fix: hosted
          ? `Nothing to do, or set validation.sampler: fal to render on fal too (no local download), or download it first (huggingface-cli download ${given}).`
          : `Nothing to do, or download it first (huggingface-cli download ${given}) so the run starts at once.`,
        source: SOURCE,
        field: hosted ? "validation.sampler" : "base.path",
      },
    ];
  }
  const arch = checkArchitecture(await identify(snapshot, true), model, given, hosted);
  if (arch.some((f) => f.severity === "error")) return [...looks, ...arch];
  // fal's LoRA is trained on fal's own base, never on these weights: their layer sizes say nothing about converting it.
  return [...looks, ...arch, ...(hosted ? [] : await outputFormatFindings(contract, model, given, snapshot, await localLayout(snapshot, true)))];
}

type Identified = { signature?: BaseSignature; what: string } | { unreadable: string };

async function identify(path: string, isDir: boolean): Promise<Identified> {
  try {
    if (!isDir) return fromSingleFile(path);
    const index = join(path, "model_index.json");
    if (existsSync(index)) {
      const cls = String((JSON.parse(await readSmallText({ file: index, limit: FILE_LIMITS.modelConfig, shown: "model_index.json" })) as { _class_name?: unknown })._class_name ?? "");
      return { signature: signatureOfClass(cls), what: `model_index.json says ${cls || "no _class_name"}` };
    }
    for (const sub of ["transformer", "unet", "."]) {
      const config = join(path, sub, "config.json");
      if (!existsSync(config)) continue;
      const shown = `${sub === "." ? "" : `${sub}/`}config.json`;
      const cls = String((JSON.parse(await readSmallText({ file: config, limit: FILE_LIMITS.modelConfig, shown })) as { _class_name?: unknown })._class_name ?? "");
      if (cls) return { signature: signatureOfClass(cls), what: `${shown} says ${cls}` };
    }
    // A folder of single files (Kohya's FLUX.1 layout): the largest .safetensors is the denoiser.
    const files = (await readdir(path)).filter((f) => f.endsWith(".safetensors") || f.endsWith(".sft"));
    if (files.length === 0) return { unreadable: "the folder holds no model_index.json, config.json or .safetensors file" };
    const sizes = await Promise.all(files.map(async (f) => [f, (await stat(join(path, f))).size] as const));
    const largest = sizes.sort((a, b) => b[1] - a[1])[0]![0];
    return fromSingleFile(join(path, largest));
  } catch (error) {
    return { unreadable: isLoraspecError(error) || error instanceof SyntaxError ? (error as Error).message : String((error as Error).message ?? error) };
  }
}

async function fromSingleFile(path: string): Promise<Identified> {
  const file = await openSafetensors({ path });
  try {
    const keys = file.tensors.map((t) => t.name);
    return { signature: signatureOfKeys(keys), what: `the header of ${path.split("/").pop()} (${keys.length} tensors)` };
  } finally {
    await file.close();
  }
}

/**
 * `hosted`: fal, whose job never loads base.path: only validate's local renders (validation.sampler: worker) would, so
 * a base they cannot load is a warning that says so, not "the trainer would fail".
 */
function checkArchitecture(found: Identified, model: BaseModelRecord, given: string, hosted = false): Finding[] {
  const loader = hosted ? "validate's local renders (validation.sampler: worker; fal trains on its own copy)" : "the trainer";
  const severity = hosted ? ("warning" as const) : ("error" as const);
  if ("unreadable" in found) {
    return [
      {
        rule: "base-weights-unreadable",
        severity,
        message: `cannot tell what base.path '${given}' holds: ${found.unreadable}.`,
        fix: `Point base.path at a diffusers folder (with model_index.json) or a .safetensors file of ${model.label}.`,
        source: SOURCE,
        field: "base.path",
      },
    ];
  }
  if (!found.signature) {
    return [
      {
        rule: "base-architecture-unknown",
        severity: "info",
        message: `could not identify the architecture of base.path '${given}' (${found.what}); ${loader} will find out.`,
        fix: `Make sure it is ${model.label}.`,
        source: SOURCE,
        field: "base.path",
      },
    ];
  }
  if (found.signature.bases.includes(model.id)) return [];
  return [
    {
      rule: "base-architecture-mismatch",
      severity,
      message: `base.path '${given}' holds a ${found.signature.arch} (${found.what}), but base.model is ${model.label}: ${loader} would fail loading it.`,
      fix: `Set base.model to ${found.signature.bases.join(" or ")}, or point base.path at ${model.label} weights.`,
      source: `${SOURCE}; ${found.signature.source}`,
      field: "base.path",
    },
  ];
}
