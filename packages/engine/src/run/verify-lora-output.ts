import { open, type FileHandle } from "node:fs/promises";
import { LoraspecError } from "@loraspec/core/errors.js";
import { decodeToF32, FLOAT_DTYPES } from "@loraspec/core/lora/dtype.js";
import { openSafetensors } from "../lora/safetensors-file.js";
import { nanHint } from "./supervision-policy.js";

export interface LoraOutputSummary {
  path: string;
  bytes: number;
  tensors: number;
  loraTensors: number;
  metadata: Record<string, string>;
}

/** A header larger than this is not a LoRA header (same cap as the safetensors reference). */
const HEADER_CAP = 100_000_000;

/**
 * Judges a run's output: a safetensors file whose header parses, whose tensors lie inside the
 * file, and which holds LoRA tensors. A run succeeds only when this passes, whatever the exit code.
 */
export async function verifyLoraOutput(params: { path: string; precision?: string }): Promise<LoraOutputSummary> {
  const { path } = params;
  const fail = (message: string, details?: unknown) =>
    new LoraspecError("E_NO_OUTPUT", `${path}: ${message}`, {
      file: path,
      hint: "the trainer did not leave a usable LoRA; read `loraspec logs <id>` and resume from the last checkpoint",
      details,
    });
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, "r");
  } catch {
    throw fail("the LoRA file does not exist");
  }
  try {
    const { size } = await handle.stat();
    if (size < 8) throw fail(`the file is ${size} bytes, too short for a safetensors header`);
    const lengthBytes = Buffer.alloc(8);
    await handle.read(lengthBytes, 0, 8, 0);
    const headerLength = Number(lengthBytes.readBigUInt64LE(0));
    if (headerLength <= 0 || headerLength > HEADER_CAP || 8 + headerLength > size) {
      throw fail(`the header length ${headerLength} does not fit the file (${size} bytes)`);
    }
    const headerBytes = Buffer.alloc(headerLength);
    await handle.read(headerBytes, 0, headerLength, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBytes.toString("utf8")) as Record<string, unknown>;
    } catch {
      throw fail("the header is not JSON (a truncated or corrupt file)");
    }
    const dataSize = size - 8 - headerLength;
    let tensors = 0;
    let loraTensors = 0;
    for (const [name, info] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      const offsets = (info as { data_offsets?: unknown }).data_offsets;
      if (!Array.isArray(offsets) || offsets.length !== 2 || !(offsets[1] <= dataSize) || !(offsets[0] <= offsets[1])) {
        throw fail(`tensor "${name}" lies outside the file (a truncated file?)`, { tensor: name, offsets, dataSize });
      }
      tensors++;
      if (/lora|\.alpha$|lokr|hada/i.test(name)) loraTensors++;
    }
    if (tensors === 0) throw fail("the file holds no tensors");
    if (loraTensors === 0) throw fail("the file holds no LoRA tensors (no lora_A/lora_B/lora_down/lora_up keys)");
    const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
    await handle.close();
    handle = undefined;
    await checkValues(path, fail, params.precision);
    return { path, bytes: size, tensors, loraTensors, metadata };
  } finally {
    await handle?.close();
  }
}

/**
 * Full safetensors validation (the LoRA tools' reader) and a scan for NaN/Inf values: a file with
 * a good header can still hold a diverged LoRA (perf-reliability.md §4c requirement 1).
 */
async function checkValues(path: string, fail: (message: string, details?: unknown) => LoraspecError, precision?: string): Promise<void> {
  let file;
  try {
    file = await openSafetensors({ path });
  } catch (error) {
    throw fail(`not a valid safetensors file: ${(error as Error).message}`, { cause: (error as LoraspecError).code });
  }
  try {
    for (const t of file.tensors) {
      if (!FLOAT_DTYPES.has(t.dtype)) continue;
      const values = decodeToF32(t.dtype, await file.readBytes(t.name));
      for (let i = 0; i < values.length; i++) {
        if (!Number.isFinite(values[i]!)) {
          throw new LoraspecError("E_TRAIN_DIVERGED", `${path}: tensor "${t.name}" holds NaN or Inf values; the LoRA is broken`, {
            file: path,
            hint: `training diverged: ${nanHint(precision)}; then resume from an earlier checkpoint`,
            details: { tensor: t.name, index: i },
          });
        }
      }
    }
  } finally {
    await file.close();
  }
}
