import { isLoraspecError, type LoraspecError } from "@loraspec/core/errors.js";
import type { Finding } from "@loraspec/core/lint/finding.js";
import { PINS_FILE, readDatasetPins, type DatasetPins } from "./dataset-pins.js";

/** The rule id of a pins file that cannot be used (core lint/finding.ts RULES). */
export const PINS_INVALID_RULE = "dataset-pins-invalid";

/**
 * The stored keep/drop choices as check, prep and the page read them: a pins file that cannot be
 * read or is not exactly the schema (E_DATASET_PINS_INVALID) does not stop them; it is one warning
 * naming the file and what is wrong, and dedupe decides alone (no pins) until it is fixed or deleted.
 */
export async function readStoredPins(params: { projectDir: string; readFile?: (path: string) => Promise<string> }): Promise<{ pins: DatasetPins; finding?: Finding }> {
  try {
    return { pins: await readDatasetPins(params) };
  } catch (error) {
    if (!isLoraspecError(error) || error.code !== "E_DATASET_PINS_INVALID") throw error;
    return { pins: { keep: [], distinct: [] }, finding: pinsFinding(error) };
  }
}

function pinsFinding(error: LoraspecError): Finding {
  return {
    rule: PINS_INVALID_RULE,
    severity: "warning",
    message: `${error.message} (E_DATASET_PINS_INVALID): your keep/drop choices on duplicates are not applied; prep keeps one image of each cluster by itself.`,
    fix: `Fix ${PINS_FILE} by hand, or delete it (or 'Forget my choices' on the Dataset page) and choose again.`,
    source: "ours: the stored choices are hostile input, validated (engine dataset/dataset-pins.ts)",
  };
}
