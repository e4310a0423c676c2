import type { LoraspecEvent } from "@loraspec/core/events.js";
import { parseLora, type ParsedLora } from "@loraspec/core/lora/parse-lora.js";
import { LoraspecError } from "@loraspec/core/errors.js";
import { checkTarget } from "@loraspec/core/lora/options.js";
import { checkPlannable, planConvert, type TargetFormat } from "@loraspec/core/lora/plan.js";
import { refreshNetworkMetadata } from "@loraspec/core/lora/plan-metadata.js";
import { executePlan } from "./execute-plan.js";
import { fitPlan, widenedWarning } from "./value-range.js";
import { findSharedDown, findSparseFused, findZeroParts } from "./fused-layout.js";
import { assertFinite } from "./non-finite.js";
import { readAlphas } from "./inspect-lora.js";
import { assertOutputIsNew } from "./same-file.js";
import { checkInputFile, checkOutputFile } from "./file-operands.js";
import { openSafetensors, type SafetensorsFile } from "./safetensors-file.js";
import { writeSafetensors } from "./write-safetensors.js";

/**
 * Converts a LoRA file to another key format with every key accounted for. Yields events; the
 * final `done` carries { output, tensors, dropped, bytes }.
 */
export async function* convertLora(params: {
  input: string;
  output: string;
  to: TargetFormat;
  allowDrop?: boolean;
  /** Replace an existing output file (never an input); else E_FILE_EXISTS. */
  overwrite?: boolean;
  signal?: AbortSignal;
}): AsyncGenerator<LoraspecEvent> {
  checkTarget(params.to);
  // Every file operand usable before anything is read: a folder, an empty name, a path under a file is coded.
  await checkInputFile(params.input, "<file>");
  await checkOutputFile(params.output);
  // the output is never an input (checked first); an existing output is refused once the input is known good,
  // so a broken input reports itself whatever the output folder holds
  await assertOutputIsNew({ output: params.output, inputs: [params.input], overwrite: true });
  const file = await openSafetensors({ path: params.input });
  try {
    yield { type: "phase", name: "read", message: `reading ${params.input}` };
    const alphas = await readAlphas(file);
    const parsed = parseLora({ tensors: file.tensors, metadata: file.metadata, alphas });
    checkPlannable({ parsed, tensors: file.tensors }, params.input);
    assertFinite(file, parsed, params.input);
    await assertOutputIsNew({ output: params.output, inputs: [params.input], overwrite: params.overwrite });
    const split = params.to === "diffusers";
    const sparse = split ? findSparseFused(file, parsed) : new Set<string>();
    const zeroParts = split ? findZeroParts(file, parsed) : undefined;
    const sharedDown = split ? undefined : findSharedDown(file, parsed);
    if (sparse.size > 0) {
      yield { type: "warning", code: "W_LORA_SPLIT_QKV", message: `${sparse.size} fused module(s) have a block-sparse up matrix (trained with split_qkv): split by rank; their alpha may be ambiguous (sd-scripts #2204)` };
    }
    const plan = planConvert({ input: { parsed, tensors: file.tensors, sparse, zeroParts, sharedDown, metadata: file.metadata, alphas }, target: params.to, allowDrop: params.allowDrop, file: params.input });
    if (plan.dropped.length > 0) {
      yield { type: "warning", code: "E_LORA_UNUSED_KEYS", message: `dropped ${plan.dropped.length} key(s) that cannot be placed: ${plan.dropped.join(", ")}`, file: params.input };
    }
    const metadata: Record<string, string> = { ...file.metadata };
    // Its lora_alpha is now baked into the weights (diffusers) or carried as .alpha (kohya/comfy).
    delete metadata.lora_adapter_metadata;
    if (params.to === "diffusers") metadata.format = "pt";
    // ss_network_alpha / ss_network_dim say what this file holds, or go (core plan-metadata.ts).
    // The source's alphas count only when it had them (a diffusers file's "alpha = rank" is no alpha its metadata described).
    const sourceAlphas = parsed.placed.every((m) => m.alpha !== undefined) ? parsed.placed.map((m) => (m.alpha !== 0 ? m.alpha! : m.rank)) : [];
    refreshNetworkMetadata(metadata, plan.tensors, params.to, { alphas: sourceAlphas, ranks: parsed.placed.map((m) => m.rank) });
    metadata["loraspec.converted_from"] = `${parsed.format}:${parsed.arch?.id ?? "unknown"}`;
    yield { type: "phase", name: "write", message: `writing ${plan.tensors.length} tensors to ${params.output}` };
    const fitted = fitPlan({ plan: plan.tensors, inputs: [file], file: params.input });
    if (fitted.widened.length > 0) yield widenedWarning(fitted.widened, params.input);
    const result = await writeSafetensors({ path: params.output, tensors: executePlan({ plan: fitted.plan, inputs: [file], fitted: true }), metadata, signal: params.signal });
    yield { type: "done", result: { output: params.output, format: params.to, from: parsed.format, architecture: parsed.arch?.id, tensors: plan.tensors.length, dropped: plan.dropped, bytes: result.bytes } };
  } catch (error) {
    if (params.signal?.aborted && !(error instanceof LoraspecError)) throw new LoraspecError("E_CANCELLED", "convert cancelled", { hint: "Nothing was written." });
    throw error;
  } finally {
    await file.close();
  }
}
