import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { validationThreshold } from "@loraspec/core/knowledge/validation-thresholds.js";
import { parseLora, type ParsedLora } from "@loraspec/core/lora/parse-lora.js";
import { checkMergeOptions, isScale, mergeUsesSeed, parseWeightedPath, type MergeMethod } from "@loraspec/core/lora/options.js";
import { planScale } from "@loraspec/core/lora/plan-scale.js";
import { checkMergeInputs, planCatMerge, planConvert, type PlanInput, type TargetFormat } from "@loraspec/core/lora/plan.js";
import { type RunWorkerParams, runWorker } from "../worker/run-worker.js";
import { executePlan } from "./execute-plan.js";
import { fitPlan, widenedWarning } from "./value-range.js";
import { assertFinite, assertFiniteKeys, factorKeys, scanNonFinite } from "./non-finite.js";
import { readAlphas } from "./inspect-lora.js";
import { assertOutputIsNew } from "./same-file.js";
import { checkInputFile, checkOutputFile } from "./file-operands.js";
import { openSafetensors, type SafetensorsFile } from "./safetensors-file.js";
import { writeSafetensors } from "./write-safetensors.js";
import { measureDeltaError, type DeltaError } from "./delta-error.js";
import { MERGE_DELTA_ERROR } from "@loraspec/core/knowledge/merge-delta-error.js";

export type { MergeMethod };

export interface MergeInput {
  path: string;
  weight: number;
}

/**
 * Parses `file.safetensors:0.5` (weight defaults to 1; a Windows drive letter is not a weight). The files on disk decide
 * what a colon means (core parseWeightedPath): `a.safetensors:abc` with a.safetensors there is E_USAGE naming 'abc'.
 */
export function parseMergeInput(arg: string, exists: (path: string) => boolean = existsSync): MergeInput {
  return parseWeightedPath(arg, exists);
}

function defaultTarget(parsed: ParsedLora): TargetFormat {
  if (parsed.format === "comfy") return "comfy";
  if (parsed.format === "kohya") return "kohya";
  return "diffusers";
}

export interface MergeLoraParams {
  inputs: MergeInput[];
  output: string;
  method: MergeMethod;
  to?: TargetFormat;
  rank?: number;
  density?: number;
  seed?: number;
  /** Replace an existing output file (never an input); else E_FILE_EXISTS. */
  overwrite?: boolean;
  signal?: AbortSignal;
  /** Worker overrides (python, spawn) for tests. */
  worker?: Partial<RunWorkerParams>;
}

/**
 * Merges LoRAs. Every input is normalised first and every key must be placed (else
 * E_LORA_UNUSED_KEYS). `cat` is exact and runs here (streaming, byte copies where possible);
 * `svd`, `ties`, `dare`, `linear` run in the Python worker (svd in the low-rank space; ties/dare on the
 * dense per-module delta, re-factored by randomized SVD with the error reported in the result).
 * Cancelling `signal` stops the worker (SIGINT, SIGTERM, SIGKILL, as `stop` does) and removes the temp folder.
 * Warns over the stacking rule (adapter count, combined weight) from the knowledge base.
 * One input with `cat` is a scale, not a merge (scaleLora below): the same keys with the delta x its weight.
 */
export async function* mergeLora(params: MergeLoraParams): AsyncGenerator<LoraspecEvent> {
  // Every flag, weight and scale checked before any file is opened (the same check as the CLI's and the HTTP API's).
  const { inputs, method, rank, density, seed, to } = checkMergeOptions(params);
  // Every file operand usable before anything is read: a folder, an empty name, a path under a file is coded.
  for (const [n, i] of inputs.entries()) await checkInputFile(i.path, `input ${n + 1}`);
  await checkOutputFile(params.output);
  if (isScale({ inputs, method })) {
    yield* scaleLora({ input: inputs[0]!, output: params.output, overwrite: params.overwrite, signal: params.signal });
    return;
  }
  // the output is never an input (checked first); an existing output is refused once the inputs are known good
  await assertOutputIsNew({ output: params.output, inputs: inputs.map((i) => i.path), overwrite: true });
  yield* stackingWarnings(inputs);

  const files: SafetensorsFile[] = [];
  let tmp: string | undefined;
  try {
    const planInputs = await openInputs(inputs, files);
    // Same base model, every key placed, every factor readable: for every method, before any work.
    const arch = checkMergeInputs(planInputs, inputs.map((i) => i.path));
    planInputs.forEach((p, n) => assertFinite(files[n]!, p.parsed, inputs[n]!.path));
    await assertOutputIsNew({ output: params.output, inputs: inputs.map((i) => i.path), overwrite: params.overwrite });
    const target = to ?? defaultTarget(planInputs[0]!.parsed);
    const metadata = mergeMetadata({ inputs, method, rank, density, seed, target, arch, planInputs, files });

    if (method === "cat") {
      yield { type: "phase", name: "merge", message: `cat of ${inputs.length} LoRAs (${arch.title}) -> ${target}` };
      const plan = planCatMerge({ inputs: planInputs, weights: inputs.map((i) => i.weight), target, files: inputs.map((i) => i.path) });
      const fitted = fitPlan({ plan: plan.tensors, inputs: files });
      if (fitted.widened.length > 0) yield widenedWarning(fitted.widened);
      const result = await writeSafetensors({ path: params.output, tensors: executePlan({ plan: fitted.plan, inputs: files, fitted: true }), metadata, signal: params.signal });
      // cat is the exact weighted sum by construction (knowledge/merge-delta-error.ts says why it is not measured per run)
      yield { type: "done", result: { output: params.output, method, target, tensors: plan.tensors.length, bytes: result.bytes, exact: true } };
      return;
    }

    // Delta-space methods: normalise each input to kohya layout, merge in the worker, convert back.
    if (params.signal?.aborted) throw cancelled();
    tmp = await mkdtemp(join(tmpdir(), "loraspec-merge-"));
    yield* mergeInWorker({ params, inputs, method, rank, density, seed, target, arch, planInputs, files, metadata, tmp });
  } catch (error) {
    // An abort surfaces from the writer as a DOMException: the user asked for it, so it is coded.
    if (params.signal?.aborted && !(error instanceof LoraspecError)) throw cancelled();
    throw error;
  } finally {
    // Every exit path (done, error, cancel, the consumer stopping early) closes the inputs and
    // removes the temp folder.
    for (const f of files) await f.close().catch(() => {});
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}

/** A merge once its inputs are open and checked: the options, the target format, the base architecture and the open inputs. */
interface CheckedMerge {
  inputs: MergeInput[];
  method: MergeMethod;
  rank?: number;
  density?: number;
  seed?: number;
  target: TargetFormat;
  arch: ReturnType<typeof checkMergeInputs>;
  planInputs: PlanInput[];
  /** The open inputs, in order; the merge's caller closes them (and any file pushed here). */
  files: SafetensorsFile[];
}

/** The stacking rule from the knowledge base: too many adapters, or too much combined weight. */
function* stackingWarnings(inputs: MergeInput[]): Generator<LoraspecEvent> {
  const count = validationThreshold("stack_adapter_count");
  const combined = validationThreshold("stack_combined_weight");
  const total = inputs.reduce((s, i) => s + Math.abs(i.weight), 0);
  if (inputs.length > count.warn) yield { type: "warning", code: "W_STACK_COUNT", message: `${inputs.length} adapters: more than ${count.warn} rarely keeps each one recognisable (${count.source})` };
  if (total > combined.warn) yield { type: "warning", code: "W_STACK_WEIGHT", message: `combined weight ${total.toFixed(3)} is above ${combined.warn} (${combined.source})` };
}

/** Opens and parses every input, pushing each open file to `files` (so the caller closes it whatever happens next). */
async function openInputs(inputs: MergeInput[], files: SafetensorsFile[]): Promise<PlanInput[]> {
  const planInputs: PlanInput[] = [];
  for (const i of inputs) {
    const f = await openSafetensors({ path: i.path });
    files.push(f);
    const parsed = parseLora({ tensors: f.tensors, metadata: f.metadata, alphas: await readAlphas(f) });
    // an unknown base (or a LoKr/LoHa file, whose modules are not plain LoRA) is checkMergeInputs' to name
    planInputs.push({ parsed, tensors: f.tensors });
  }
  return planInputs;
}

/** The output's metadata: what was merged and how (`loraspec.merge`), and the first input's base model keys. */
function mergeMetadata(m: CheckedMerge): Record<string, string> {
  const { inputs, method, rank, density, seed, planInputs, files } = m;
  const metadata: Record<string, string> = {
    "loraspec.merge": JSON.stringify({
      method,
      rank: rank ?? null,
      density: method === "ties" || method === "dare" ? (density ?? 0.7) : null,
      seed: mergeUsesSeed(method) ? (seed ?? 0) : null,
      inputs: inputs.map((i, n) => ({ file: basename(i.path), weight: i.weight, format: planInputs[n]!.parsed.format, sha256_header: createHash("sha256").update(JSON.stringify(files[n]!.tensors)).digest("hex").slice(0, 16) })),
    }),
    "modelspec.merged_from": inputs.map((i) => basename(i.path)).join(", "),
  };
  if (m.arch.modelspecArchitecture) metadata["modelspec.architecture"] = m.arch.modelspecArchitecture;
  for (const k of ["ss_base_model_version", "modelspec.sai_model_spec", "modelspec.implementation"]) {
    const v = files[0]!.metadata[k];
    if (v !== undefined) metadata[k] = v;
  }
  if (m.target === "diffusers") metadata.format = "pt";
  return metadata;
}

/**
 * svd, ties, dare, linear: each input written to `tmp` in kohya layout, merged there by the worker,
 * and the result converted to the target format at the output.
 */
async function* mergeInWorker(
  m: CheckedMerge & { params: MergeLoraParams; metadata: Record<string, string>; tmp: string },
): AsyncGenerator<LoraspecEvent> {
  const { params, inputs, method, rank, density, seed, target, files } = m;
  const canonical: MergeInput[] = [];
  for (let n = 0; n < inputs.length; n++) {
    const plan = planConvert({ input: m.planInputs[n]!, target: "kohya", file: inputs[n]!.path });
    const path = join(m.tmp, `in${n}.safetensors`);
    await writeSafetensors({ path, tensors: executePlan({ plan: plan.tensors, inputs: [files[n]!] }), signal: params.signal });
    canonical.push({ path, weight: inputs[n]!.weight });
  }
  const merged = join(m.tmp, "merged.safetensors");
  let workerResult: Record<string, unknown> | undefined;
  for await (const event of runWorker({
    ...params.worker,
    command: "merge",
    request: { inputs: canonical, method, rank: rank ?? null, density: density ?? 0.7, seed: seed ?? 0, output: merged, dtype: outputDtype(m.planInputs[0]!, files[0]!) },
    signal: params.signal,
  })) {
    if (event.type === "done") workerResult = event.result;
    else yield event;
  }
  const out = await openSafetensors({ path: merged });
  files.push(out);
  const parsed = parseLora({ tensors: out.tensors, alphas: await readAlphas(out), arch: m.arch.id });
  refuseNonFiniteResult(out, parsed, method);
  const plan = planConvert({ input: { parsed, tensors: out.tensors }, target, file: merged });
  const result = await writeSafetensors({ path: params.output, tensors: executePlan({ plan: plan.tensors, inputs: [out] }), metadata: m.metadata, signal: params.signal });
  const deltaError = yield* measuredDeltaError({ inputs, method, planInputs: m.planInputs, files, output: params.output });
  yield { type: "done", result: { output: params.output, method, target, tensors: plan.tensors.length, bytes: result.bytes, worker: workerResult, ...(deltaError ? { deltaError } : {}) } };
}

/**
 * The merged delta measured against the exact weighted sum of the inputs' deltas (lora/delta-error.ts), on the file
 * written, for the methods that aim at that sum and can miss it (knowledge/merge-delta-error.ts: linear, peft's factor
 * combination, approximate; svd, truncated to --rank); cat is exact by construction, ties and dare trim on purpose. Above the
 * record's threshold it warns W_MERGE_DELTA_ERROR with the method's remedy.
 */
async function* measuredDeltaError(m: { inputs: MergeInput[]; method: MergeMethod; planInputs: PlanInput[]; files: SafetensorsFile[]; output: string }): AsyncGenerator<LoraspecEvent, DeltaError | undefined> {
  if (!MERGE_DELTA_ERROR.methods.includes(m.method)) return undefined;
  const out = await openSafetensors({ path: m.output });
  m.files.push(out);
  const parsed = parseLora({ tensors: out.tensors, metadata: out.metadata, alphas: await readAlphas(out) });
  const measured = await measureDeltaError({
    inputs: m.planInputs.map((p, n) => ({ file: m.files[n]!, parsed: p.parsed, weight: m.inputs[n]!.weight })),
    output: { file: out, parsed },
    sample: MERGE_DELTA_ERROR.sampleModules,
  });
  if (measured.relative > MERGE_DELTA_ERROR.warnAbove) {
    const remedy =
      m.method === "linear"
        ? "linear (peft's) combines the A and B factors separately, so cross terms enter the delta: use --method cat (exact, rank = sum of ranks) or svd (exact in the low-rank space, truncated to --rank)"
        : m.method === "svd"
          ? "svd kept only --rank of the merged delta's singular values: raise --rank (the sum of the input ranks is exact) or use --method cat"
          : "this method aims at the weighted sum: this is a bug in loraspec, please report it";
    const where = measured.modules < measured.of ? `${measured.modules} of ${measured.of} modules measured` : `all ${measured.of} modules`;
    yield {
      type: "warning",
      code: "W_MERGE_DELTA_ERROR",
      message: `the ${m.method} merge's delta is ${(measured.relative * 100).toPrecision(3)}% off the exact weighted sum of the inputs' deltas (relative Frobenius error, ${where}; worst ${measured.worst?.module} ${((measured.worst?.relative ?? 0) * 100).toPrecision(3)}%; warns above ${MERGE_DELTA_ERROR.warnAbove * 100}%): ${remedy}`,
    };
  }
  return measured;
}

/**
 * The worker's factors are written in the first input's width (F16 overflows past 65504): a merge
 * whose result holds NaN/Inf is refused, naming the factor, before anything is written at the output.
 */
function refuseNonFiniteResult(out: SafetensorsFile, parsed: ParsedLora, method: MergeMethod): void {
  const bad = scanNonFinite(out, factorKeys(parsed));
  if (bad.length === 0) return;
  throw new LoraspecError("E_NOT_SUPPORTED", `the ${method} merge produced NaN/Inf in ${bad.length} factor(s): ${bad.slice(0, 4).map((b) => `${b.tensor} (${b.nan} NaN, ${b.inf} Inf)`).join(", ")}`, {
    field: `tensor "${bad[0]!.tensor}"`,
    hint: "Nothing was written. The merged factors do not fit the output dtype (the first input's); convert the first input to BF16 or F32, or merge with smaller weights.",
    details: { tensors: bad },
  });
}

/** The math runs in fp32/fp64; the output keeps the first input's float width. */
function outputDtype(first: PlanInput, file: SafetensorsFile): string {
  const firstDown = first.parsed.placed[0]?.keys.down;
  const firstDtype = firstDown ? file.tensor(firstDown).dtype : "F32";
  return firstDtype === "BF16" || firstDtype === "F16" ? firstDtype : "F32";
}

/**
 * One input (`merge X:S`, method cat): the same LoRA with its delta x S (core plan-scale.ts: one factor
 * per module scaled, every other tensor a byte copy, keys, shapes, rank and alpha kept). The metadata is
 * the input's plus `loraspec.scale`; kohya's hashes are recomputed by the writer. The input is never
 * touched; the output is written to a temp file and renamed, as every merge is.
 */
async function* scaleLora(params: { input: MergeInput; output: string; overwrite?: boolean; signal?: AbortSignal }): AsyncGenerator<LoraspecEvent> {
  const { path, weight: scale } = params.input;
  await assertOutputIsNew({ output: params.output, inputs: [path], overwrite: true });
  const file = await openSafetensors({ path });
  try {
    const alphas = await readAlphas(file);
    const parsed = parseLora({ tensors: file.tensors, metadata: file.metadata, alphas });
    const plan = planScale({ input: { parsed, tensors: file.tensors, metadata: file.metadata, alphas }, scale, file: path });
    // one pass over the factors: the placed modules' down/up and the scaled ones (a LoKr/LoHa factor too)
    assertFiniteKeys(file, [...factorKeys(parsed), ...plan.scaled], path);
    await assertOutputIsNew({ output: params.output, inputs: [path], overwrite: params.overwrite });
    const previous = file.metadata["loraspec.scale"];
    const metadata: Record<string, string> = {
      ...file.metadata,
      "loraspec.scale": JSON.stringify({
        scale,
        file: basename(path),
        format: parsed.format,
        sha256_header: createHash("sha256").update(JSON.stringify(file.tensors)).digest("hex").slice(0, 16),
        rule: "delta x scale: lora_up/lora_B (and a peft lora_B.bias), LoHa hada_w1_a, LoKr lokr_w1 (or lokr_w1_a), full diff/diff_b; alpha kept",
        ...(previous !== undefined ? { previous: parseOr(previous) } : {}),
      }),
    };
    const kinds = Object.entries(plan.kinds).map(([k, n]) => `${n} ${k}`).join(", ");
    yield { type: "phase", name: "merge", message: `scale ${path} x ${scale} (${plan.arch.title}, ${parsed.format}: ${kinds})` };
    const fitted = fitPlan({ plan: plan.tensors, inputs: [file], file: path });
    if (fitted.widened.length > 0) yield widenedWarning(fitted.widened, path);
    const result = await writeSafetensors({ path: params.output, tensors: executePlan({ plan: fitted.plan, inputs: [file], fitted: true }), metadata, signal: params.signal });
    yield {
      type: "done",
      result: { output: params.output, method: "cat", scale, target: parsed.format, architecture: plan.arch.id, tensors: plan.tensors.length, scaled: plan.scaled.length, kinds: plan.kinds, bytes: result.bytes },
    };
  } catch (error) {
    if (params.signal?.aborted && !(error instanceof LoraspecError)) throw cancelled();
    throw error;
  } finally {
    await file.close().catch(() => {});
  }
}

function parseOr(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function cancelled(): LoraspecError {
  return new LoraspecError("E_CANCELLED", "merge cancelled", { hint: "Nothing was written; the inputs are untouched." });
}
