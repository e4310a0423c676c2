import { existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { getBaseModel, type BaseModelRecord } from "@loraspec/core/knowledge/base-models.js";
import { getCompatibility } from "@loraspec/core/knowledge/trainers.js";
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
import { openSafetensors } from "../lora/safetensors-file.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readSmallText } from "../fs/read-small-file.js";
import { cachedSnapshot, hfHubCache } from "./hf-cache.js";

/**
 * The form a local base path is in, against the form each trainer loads (knowledge/base-load-forms.ts):
 * a diffusers folder with every listed component whole, Kohya's FLUX.1 single files by role, a folder with
 * transformer/; and what validate's sampler and output.format need of it. check's preflight (preflight-base.ts)
 * and the compilers (build-train-job.ts: kohyaFluxFilesOf) read the same lookups.
 */

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

export async function loadFormFindings(contract: Contract, model: BaseModelRecord, given: string, path: string, layout: LocalLayout, env: NodeJS.ProcessEnv): Promise<Finding[]> {
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

export function validationFindings(contract: Contract, given: string, layout: LocalLayout): Finding[] {
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
export async function outputFormatFindings(contract: Contract, model: BaseModelRecord, given: string, path: string, layout: LocalLayout): Promise<Finding[]> {
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
