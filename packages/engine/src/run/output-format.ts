import { basename, dirname, join } from "node:path";
import { existsSync } from "node:fs";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { LoraspecError, isLoraspecError } from "@loraspec/core/errors.js";
import { parseLora } from "@loraspec/core/lora/parse-lora.js";
import type { TargetFormat } from "@loraspec/core/lora/plan.js";
import { convertLora } from "../lora/convert-lora.js";
import { readAlphas } from "../lora/inspect-lora.js";
import { openSafetensors } from "../lora/safetensors-file.js";

/**
 * output.format: the LoRA a run leaves is converted to the contract's key format with the LoRA
 * tools' converter (engine/lora/convert-lora.ts: every key accounted for, ΔW kept exactly), beside
 * the trainer's own file as `<name>.<format>.safetensors`; the run's output is then that file.
 * Absent, or a file already in that format: the trainer's file as it is. A file that cannot be
 * converted (DoRA/LoKr/LoHa modules, an unknown base) fails the run with the converter's coded
 * error; the trainer's file stays, named in the hint.
 */
export async function* convertRunOutput(params: { path: string; format?: TargetFormat }): AsyncGenerator<LoraspecEvent, string> {
  const { path, format } = params;
  if (format === undefined) return path;
  const file = await openSafetensors({ path });
  let already: boolean;
  try {
    const parsed = parseLora({ tensors: file.tensors, metadata: file.metadata, alphas: await readAlphas(file) });
    // Kohya's own LyCORIS output (lora_unet_*.lokr_w1, ...) is already in Kohya names.
    const kohyaNamed = file.tensors.every((t) => /^lora_(unet|te\d?)_/.test(t.name));
    already = parsed.format === format || (format === "kohya" && parsed.format === "lycoris" && kohyaNamed);
  } finally {
    await file.close();
  }
  if (already) return path;
  const out = join(dirname(path), `${basename(path).replace(/\.safetensors$/, "")}.${format}.safetensors`);
  if (existsSync(out)) return out; // a resumed run that converted before
  yield { type: "phase", name: "convert", message: `output.format ${format}: converting ${basename(path)}` };
  try {
    for await (const event of convertLora({ input: path, output: out, to: format })) {
      if (event.type !== "done") yield event;
    }
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    throw new LoraspecError(error.code, `output.format ${format}: ${error.message}`, {
      field: "output.format",
      file: path,
      hint: `The trainer's LoRA is kept at ${path} (its own key format). ${error.hint ?? ""}`.trim(),
      details: error.details,
    });
  }
  return out;
}
