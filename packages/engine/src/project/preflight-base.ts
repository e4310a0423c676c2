import { existsSync, statSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { baseSource } from "@loraspec/core/contract/base-path.js";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { getBaseModel, type BaseModelRecord } from "@loraspec/core/knowledge/base-models.js";
import { getCompatibility } from "@loraspec/core/knowledge/trainers.js";
import { signatureOfClass, signatureOfKeys, type BaseSignature } from "@loraspec/core/knowledge/base-signatures.js";
import {
  componentKind,
  isWeightsFile,
  FLUX1_VARIANT_KEYS,
  KOHYA_FLUX_FILE_ROLES,
  loadFormsOf,
  REAL_DENOISER_CONFIG,
  resolveKohyaFluxFiles,
    type BaseLoadForm,
  type KohyaFluxRole,
} from "@loraspec/core/knowledge/base-load-forms.js";
import type { Finding } from "@loraspec/core/lint/finding.js";
import { isLoraspecError } from "@loraspec/core/errors.js";
import { openSafetensors } from "../lora/safetensors-file.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readSmallText } from "../fs/read-small-file.js";

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

/** The Hugging Face hub cache folder, as huggingface_hub resolves it. */
export function hfHubCache(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  return join(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "huggingface"), "hub");
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
  const given = contract.base.path ?? model.hfRepo;
  const source = baseSource(given, { contractDir: resolve(contractDir), home: homedir() });
  if (source.kind === "local") {
    const path = source.path;
    const info = await stat(path).catch(() => undefined);
    if (!info) {
      return [
        {
          rule: "base-weights-missing",
          severity: "error",
          message: `base.path '${given}' does not exist (${path}): the run would fail when the trainer loads the base.`,
          fix: `Point base.path at the ${model.label} weights (a diffusers folder, or a .safetensors file), or leave it out to use ${model.hfRepo}.`,
          source: SOURCE,
          field: "base.path",
        },
      ];
    }
    const arch = checkArchitecture(await identify(path, info.isDirectory()), model, given);
    // A base of another architecture fails anyway: its form is not worth a second error.
    if (arch.some((f) => f.severity === "error")) return arch;
    const layout = await localLayout(path, info.isDirectory());
    return [...arch, ...(await loadFormFindings(contract, model, given, path, layout, env)), ...validationFindings(contract, given, layout), ...(await outputFormatFindings(contract, model, given, path, layout))];
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
        message: `${given} is not in the local Hugging Face cache (${hfHubCache(env)}): the first run downloads it before training starts.`,
        fix: `Nothing to do, or download it first (huggingface-cli download ${given}) so the run starts at once.`,
        source: SOURCE,
        field: "base.path",
      },
    ];
  }
  const arch = checkArchitecture(await identify(snapshot, true), model, given);
  if (arch.some((f) => f.severity === "error")) return [...looks, ...arch];
  return [...looks, ...arch, ...(await outputFormatFindings(contract, model, given, snapshot, await localLayout(snapshot, true)))];
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

function checkArchitecture(found: Identified, model: BaseModelRecord, given: string): Finding[] {
  if ("unreadable" in found) {
    return [
      {
        rule: "base-weights-unreadable",
        severity: "error",
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
        message: `could not identify the architecture of base.path '${given}' (${found.what}); the trainer will find out.`,
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
      severity: "error",
      message: `base.path '${given}' holds a ${found.signature.arch} (${found.what}), but base.model is ${model.label}: the trainer would fail loading it.`,
      fix: `Set base.model to ${found.signature.bases.join(" or ")}, or point base.path at ${model.label} weights.`,
      source: `${SOURCE}; ${found.signature.source}`,
      field: "base.path",
    },
  ];
}

/** The snapshot folder of an HF repo in the local cache (refs/main first), if any. */
async function cachedSnapshot(repo: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const root = join(hfHubCache(env), `models--${repo.replaceAll("/", "--")}`);
  const ref = await readSmallText({ file: join(root, "refs", "main"), limit: FILE_LIMITS.modelConfig }).catch(() => undefined);
  if (ref && existsSync(join(root, "snapshots", ref.trim()))) return join(root, "snapshots", ref.trim());
  const snaps = await readdir(join(root, "snapshots")).catch(() => [] as string[]);
  return snaps.length > 0 ? join(root, "snapshots", snaps[0]!) : undefined;
}

const FORMS_SOURCE = (rowSource: string) => `knowledge/base-load-forms.ts (${rowSource}); ours: check lists the folder and reads model_index.json / configs / a header (no weights)`;

/** What a local base.path is, as the trainers' loaders tell forms apart (knowledge/base-load-forms.ts). */
export type LocalLayout =
  | { form: "diffusers-folder"; problems: string[] }
  | { form: "transformer-folder"; problems: string[]; fullFolder: boolean }
  | { form: "single-file"; keys: readonly string[] | undefined }
  | { form: "files-folder"; files: string[] };

/** Reads what a local base path is: a diffusers folder (and which listed components are not whole), a folder with transformer/, a single file, or a folder of single files. */
export async function localLayout(path: string, isDir: boolean): Promise<LocalLayout> {
  if (!isDir) return { form: "single-file", keys: await headerKeys(path) };
  if (existsSync(join(path, "model_index.json"))) return { form: "diffusers-folder", problems: await componentProblems(path) };
  if (existsSync(join(path, "transformer"))) return { form: "transformer-folder", problems: await folderProblems(path, "transformer", componentKind("Transformer2DModel") /* a model: config.json + weights */), fullFolder: existsSync(join(path, "text_encoder")) };
  return { form: "files-folder", files: (await readdir(path).catch(() => [] as string[])).sort() };
}

async function headerKeys(path: string): Promise<string[] | undefined> {
  try {
    const file = await openSafetensors({ path });
    try {
      return file.tensors.map((t) => t.name);
    } finally {
      await file.close();
    }
  } catch {
    return undefined;
  }
}

/** Each component model_index.json lists (non-null), with the file its loader opens missing: "vae/ (no config.json)". */
async function componentProblems(path: string): Promise<string[]> {
  let index: Record<string, unknown>;
  try {
    index = JSON.parse(await readSmallText({ file: join(path, "model_index.json"), limit: FILE_LIMITS.modelConfig, shown: "model_index.json" })) as Record<string, unknown>;
  } catch (error) {
    return [`model_index.json is not readable JSON (${(error as Error).message})`];
  }
  const problems: string[] = [];
  for (const [name, value] of Object.entries(index)) {
    if (name.startsWith("_") || !Array.isArray(value) || value.length !== 2 || value[0] === null || value[1] === null) continue;
    problems.push(...(await folderProblems(path, name, componentKind(String(value[1])))));
  }
  return problems;
}

async function folderProblems(path: string, name: string, spec: ReturnType<typeof componentKind>): Promise<string[]> {
  const entries = await readdir(join(path, name)).catch(() => undefined);
  if (!entries) return [`${name}/ (missing)`];
  if (!spec.anyOf.some((f) => entries.includes(f))) return [`${name}/ (no ${spec.anyOf.join(" or ")})`];
  if (spec.weights && !entries.some(isWeightsFile)) return [`${name}/ (no weights: .safetensors or .bin)`];
  return [];
}

const FORM_WORDS: Record<BaseLoadForm, string> = {
  "hf-id": "a Hugging Face id",
  "diffusers-folder": "a diffusers folder (model_index.json and each component it lists)",
  "transformer-folder": "a folder with a diffusers transformer/",
  "single-file": "one .safetensors checkpoint",
  "kohya-flux-files": `BFL single files by role in one folder (${KOHYA_FLUX_FILE_ROLES.roles.map((r) => r.names("flux1-dev").join(" or ")).join(", ")})`,
};

const LAYOUT_WORDS: Record<LocalLayout["form"], string> = {
  "diffusers-folder": "a diffusers folder",
  "transformer-folder": "a folder with transformer/ but no model_index.json",
  "single-file": "a single .safetensors file",
  "files-folder": "a folder of single files without model_index.json (Kohya's FLUX.1 layout)",
};

const TRAINER_WORDS: Record<string, string> = { diffusers: "the built-in trainer", kohya: "kohya sd-scripts", "ai-toolkit": "ai-toolkit" };

/** Key groups a single file must hold for a pipeline's from_single_file to build every component (the built-in trainer's loader). */
function pipelineFileGaps(keys: readonly string[], family: string): string[] {
  const has = (re: RegExp) => keys.some((k) => re.test(k));
  const groups: Array<[string, RegExp]> =
    family === "sdxl"
      ? [["UNet", /^model\.diffusion_model\./], ["VAE", /^first_stage_model\./], ["text encoder 1", /^conditioner\.embedders\.0\./], ["text encoder 2", /^conditioner\.embedders\.1\./]]
      : [["text encoders", /^(text_encoders?|conditioner|cond_stage_model)\./], ["VAE", /^(vae|first_stage_model)\./]];
  return groups.filter(([, re]) => !has(re)).map(([name]) => name);
}

/**
 * The FLUX.1 single files sd-scripts will be handed, by role, for a local base.path (the folder, or the
 * transformer file and its folder): one home for check's finding and train's compiled config.
 */
export async function kohyaFluxFilesOf(model: BaseModelRecord["id"], path: string): Promise<{ dir: string; files: Partial<Record<KohyaFluxRole, string>>; missing: KohyaFluxRole[]; listing: string[] }> {
  const isFile = (await stat(path).catch(() => undefined))?.isFile() ?? false;
  const dir = isFile ? dirname(path) : path;
  const listing = (await readdir(dir).catch(() => [] as string[])).sort();
  return { dir, listing, ...resolveKohyaFluxFiles(model, listing, isFile ? basename(path) : undefined) };
}

async function loadFormFindings(contract: Contract, model: BaseModelRecord, given: string, path: string, layout: LocalLayout, env: NodeJS.ProcessEnv): Promise<Finding[]> {
  const row = loadFormsOf(contract.trainer.name, model.family);
  // A trainer that does not train (or loraspec does not compile for) this base: lint's trainer-unsupported-base says so.
  const support = getCompatibility(contract.trainer.name, model.id);
  if (!row || !support?.supported || support.compiles === false) return [];
  const trainer = TRAINER_WORDS[contract.trainer.name] ?? contract.trainer.name;
  const source = FORMS_SOURCE(row.source);
  const refuse = (why: string): Finding[] => [
    {
      rule: "base-load-form",
      severity: "error",
      message: `${trainer} loads ${model.label} from ${row.forms.map((f) => FORM_WORDS[f]).join(", or ")}; base.path '${given}' is ${why}: the run would fail loading it.`,
      fix: `Point base.path at ${row.forms.map((f) => FORM_WORDS[f]).join(" or ")}${row.forms.includes("hf-id") ? ` (or leave it out for ${model.hfRepo})` : ""}, or pick a trainer that loads this form.`,
      source,
      field: "base.path",
    },
  ];
  if (row.forms.includes("kohya-flux-files")) {
    if (layout.form !== "files-folder" && layout.form !== "single-file") return refuse(LAYOUT_WORDS[layout.form]);
    // The resolution train's job makes (kohyaFluxFilesOf): the compiled config names exactly these files.
    const found = await kohyaFluxFilesOf(model.id, path);
    if (found.missing.length > 0) return [missingRolesFinding(model, found.dir, found.missing, found.listing, source)];
    return variantFindings(model, join(found.dir, found.files.transformer!));
  }
  if (layout.form === "files-folder") return refuse(LAYOUT_WORDS[layout.form]);
  if (layout.form === "transformer-folder" && !row.forms.includes("transformer-folder")) return refuse(LAYOUT_WORDS[layout.form]);
  if (layout.form === "diffusers-folder" || layout.form === "transformer-folder") {
    if (layout.problems.length === 0) {
      if (layout.form !== "transformer-folder" || layout.fullFolder) return [];
      return [
        {
          rule: "base-weights-download",
          severity: "info",
          message: `base.path '${given}' holds transformer/ but no text_encoder/: ${trainer} reads the text encoders and VAE from ${model.hfRepo} (the first run downloads them if they are not in the Hugging Face cache).`,
          fix: `Nothing to do, or use a whole diffusers folder of ${model.label}.`,
          source,
          field: "base.path",
        },
      ];
    }
    return [
      {
        rule: "base-component-missing",
        severity: "error",
        message: `base.path '${given}' is a diffusers folder with ${layout.problems.length === 1 ? "a component" : "components"} its loader cannot open: ${layout.problems.join(", ")}; ${trainer} would fail loading the base.`,
        fix: `Download the whole model again (every folder model_index.json lists, each with its config and weights), or leave base.path out to use ${model.hfRepo}.`,
        source,
        field: "base.path",
      },
    ];
  }
  // A single file.
  if (!row.forms.includes("single-file")) return refuse(LAYOUT_WORDS[layout.form]);
  if (contract.trainer.name === "diffusers" && layout.keys) {
    const gaps = pipelineFileGaps(layout.keys, model.family);
    if (gaps.length > 0) return refuse(`a single file without ${gaps.join(", ")} (${row.singleFileNote ?? "the loader needs the whole pipeline in the file"})`);
  }
  // diffusers' from_single_file (the built-in trainer, ai-toolkit SDXL) fetches the model repo's config files, no weights.
  if (contract.trainer.name === "kohya" || (await cachedSnapshot(model.hfRepo, env))) return [];
  return [
    {
      rule: "base-weights-download",
      severity: "info",
      message: `${trainer} opens a single file with diffusers' from_single_file, which fetches ${model.hfRepo}'s config files (JSON and tokenizer files, no weights): they are not in the local Hugging Face cache (${hfHubCache(env)}), so the first run needs the network.`,
      fix: `Nothing to do online, or fetch them first (huggingface-cli download ${model.hfRepo} --include "*.json" "*.txt" "*.model"), or use a diffusers folder.`,
      source: `${source}; diffusers loaders/single_file.py _download_diffusers_model_config_from_hub (allow_patterns *.json, *.txt, *.model)`,
      field: "base.path",
    },
  ];
}

/** The transformer file's variant from its header ([dev]: guidance_in keys), against base.model. */
async function variantFindings(model: BaseModelRecord, file: string): Promise<Finding[]> {
  const keys = await headerKeys(file);
  if (!keys) return [];
  const v = FLUX1_VARIANT_KEYS;
  const holds = keys.some((k) => k.startsWith(v.guidanceKey)) ? v.withGuidance : v.withoutGuidance;
  if (holds === model.id) return [];
  const other = getBaseModel(holds)!;
  return [
    {
      rule: "base-variant-mismatch",
      severity: "error",
      message: `${file.split("/").pop()} is a ${other.label} transformer (${holds === v.withGuidance ? "it has" : "it has no"} ${v.guidanceKey}* keys), but base.model is ${model.label}: sd-scripts trains the file's variant, not the contract's.`,
      fix: `Set base.model: ${holds}, or point base.path at the ${model.label} transformer.`,
      source: v.source,
      field: "base.model",
    },
  ];
}

function missingRolesFinding(model: BaseModelRecord, dir: string, missing: KohyaFluxRole[], listing: readonly string[], source: string): Finding {
  const roles = KOHYA_FLUX_FILE_ROLES.roles.filter((r) => missing.includes(r.role));
  const other = missing.includes("transformer")
    ? ["flux1-dev", "flux1-schnell"].filter((m) => m !== model.id).find((m) => listing.includes(KOHYA_FLUX_FILE_ROLES.roles[0]!.names(m as BaseModelRecord["id"])[0]!))
    : undefined;
  return {
    rule: "base-files-missing",
    severity: "error",
    message: `kohya sd-scripts loads ${model.label} from BFL single files; ${dir} lacks ${roles.map((r) => `${r.what} (${r.names(model.id).join(" or ")})`).join(", ")}${other ? `; ${KOHYA_FLUX_FILE_ROLES.roles[0]!.names(other as BaseModelRecord["id"])[0]} there is the ${other} transformer, not ${model.label}'s` : ""}: the compiled config would name files that are not there.`,
    fix: `Put ${roles.map((r) => r.names(model.id)[0]).join(", ")} into that folder (${model.hfRepo} and comfyanonymous/flux_text_encoders have them)${other ? `, or set base.model: ${other}` : ""}.`,
    source,
    field: "base.path",
  };
}

/**
 * validate's worker sampler (worker sample.py -> train/model.py load_pipeline) and export-script's
 * script load the base as a diffusers pipeline: a base.path it cannot load means `loraspec validate`
 * needs --base. Said by check when the trainer loads a form the sampler does not (the built-in
 * trainer's own refusal covers its case).
 */
export function workerSamplerRefusal(layout: LocalLayout, family: string, singleFile = true): string | undefined {
  if (layout.form === "diffusers-folder") return layout.problems.length === 0 ? undefined : `a diffusers folder its loader cannot open whole: ${layout.problems.join(", ")}`;
  if (layout.form === "single-file") {
    if (!singleFile) return LAYOUT_WORDS[layout.form];
    const gaps = layout.keys ? pipelineFileGaps(layout.keys, family) : [];
    return gaps.length === 0 ? undefined : `a single file without ${gaps.join(", ")}`;
  }
  return layout.form === "files-folder" && !layout.files.some((f) => f.endsWith(".safetensors")) ? "a folder without model_index.json or any .safetensors file" : LAYOUT_WORDS[layout.form];
}

function validationFindings(contract: Contract, given: string, layout: LocalLayout): Finding[] {
  if (contract.trainer.name === "diffusers" || contract.validation.sampler !== "worker") return [];
  const model = getBaseModel(contract.base.model)!;
  const why = workerSamplerRefusal(layout, model.family);
  if (!why) return [];
  return [
    {
      rule: "validation-base-not-diffusers",
      severity: "warning",
      message: `validate's worker sampler (and export-script's script) load the base as a diffusers pipeline; base.path '${given}' is ${why}: \`loraspec validate\` would fail loading it.`,
      fix: `Run \`loraspec validate --base <a diffusers folder of ${model.label}, or ${model.hfRepo}>\`, or set validation.sampler: comfyui (or fal) to render elsewhere.`,
      source: `worker sample.py load_base -> ${FORMS_SOURCE(loadFormsOf("diffusers", model.family)!.source)}`,
      field: "validation.sampler",
    },
  ];
}

/** output.format converts the trained LoRA against the real architecture's module shapes: a base of other sizes (a tiny test base) trains, then fails converting. */
async function outputFormatFindings(contract: Contract, model: BaseModelRecord, given: string, path: string, layout: LocalLayout): Promise<Finding[]> {
  const format = contract.output.format;
  const real = REAL_DENOISER_CONFIG.byFamily[model.family];
  if (!format || !real || (layout.form !== "diffusers-folder" && layout.form !== "transformer-folder")) return [];
  const file = join(path, real.folder, "config.json");
  const config = await readSmallText({ file, limit: FILE_LIMITS.modelConfig, shown: `${real.folder}/config.json` })
    .then((t) => JSON.parse(t) as Record<string, unknown>)
    .catch(() => undefined);
  if (!config) return [];
  const off = Object.entries(real.values).filter(([k, v]) => k in config && JSON.stringify(config[k]) !== JSON.stringify(v));
  if (off.length === 0) return [];
  return [
    {
      rule: "output-format-base-shapes",
      severity: "error",
      message: `output.format: ${format} converts the LoRA against ${model.label}'s real layer sizes, but base.path '${given}' has other sizes (${real.folder}/config.json: ${off.map(([k, v]) => `${k} ${JSON.stringify(config[k])}, not ${JSON.stringify(v)}`).join("; ")}): the run would train every step, then fail converting (E_LORA_SHAPE_MISMATCH).`,
      fix: "Leave output.format out for this base (the LoRA stays as the trainer writes it), or train on the real model.",
      source: REAL_DENOISER_CONFIG.source,
      field: "output.format",
    },
  ];
}

/**
 * Why a local base the worker sampler (validate) or export-script's DiffusionPipeline.from_pretrained
 * (singleFile: false) would be handed cannot be loaded as a diffusers pipeline; undefined when it can,
 * or when the path is not there (the loader's own not-found error names it).
 */
export async function diffusersBaseProblem(path: string, family: string, singleFile = true): Promise<string | undefined> {
  const info = await stat(path).catch(() => undefined);
  if (!info) return undefined;
  return workerSamplerRefusal(await localLayout(path, info.isDirectory()), family, singleFile);
}
