import { join, relative } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import type { DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import { getCompatibility } from "@loraspec/core/knowledge/trainers.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import type { Finding } from "@loraspec/core/lint/finding.js";
import { planRun, type LivePrice, type Plan } from "@loraspec/core/plan/plan-run.js";
import { loadContract, resolveDatasetDir, type LoadedContract } from "../contract/load-contract.js";
import { loadEnglishWords } from "../contract/english-words.js";
import { loadClipTokenizer } from "../contract/clip-tokenizer.js";
import { fetchFalPrices } from "../contract/fetch-fal-prices.js";
import { scanDataset } from "../dataset/scan-dataset.js";

export interface CheckProjectParams {
  /** Contract path (default lora.yaml). */
  path?: string;
  cwd?: string;
  /** FAL_KEY: when set and the trainer is fal, prices come from fal's pricing API. */
  falKey?: string;
  fetch?: typeof globalThis.fetch;
  signal?: AbortSignal;
  /** Skip the dataset scan (plan without a folder). */
  skipDataset?: boolean;
}

export interface CheckResult {
  loaded: LoadedContract;
  dataset?: DatasetSummary;
  findings: Finding[];
  plan: Plan;
  /** Things the user should know that are not findings (a failed live price fetch). */
  notes: string[];
}

/**
 * Loads the contract, scans the dataset, fetches live fal prices when it can, and lints.
 * Unusable input throws (exit 2): bad YAML, unknown model, missing or empty dataset folder,
 * unreadable images.
 */
export async function checkProject({ path, cwd, falKey, fetch, signal, skipDataset = false }: CheckProjectParams = {}): Promise<CheckResult> {
  const loaded = await loadContract({ path, cwd });
  const { contract } = loaded;
  const notes: string[] = [];
  let dataset: DatasetSummary | undefined;
  if (!skipDataset) {
    const dir = resolveDatasetDir(loaded);
    dataset = await scanDataset({
      dir,
      displayPath: contract.dataset.path,
      captionExtension: contract.captions.extension,
      contractFile: loaded.displayName,
    });
    if (dataset.unreadable.length > 0) {
      const first = dataset.unreadable[0]!;
      const shown = relative(cwd ?? process.cwd(), join(dir, first.file)) || first.file;
      throw new LoraspecError(
        "E_IMAGE_UNREADABLE",
        `cannot read image ${shown}: ${first.reason}${dataset.unreadable.length > 1 ? ` (and ${dataset.unreadable.length - 1} more)` : ""}`,
        {
          file: loaded.displayName,
          field: "dataset.path",
          hint: "Re-export or remove the unreadable file(s); `loraspec prep` lists every bad file.",
          details: { unreadable: dataset.unreadable },
        },
      );
    }
    if (dataset.images.length === 0) {
      throw new LoraspecError("E_DATASET_EMPTY", `no images in dataset folder '${contract.dataset.path}'`, {
        file: loaded.displayName,
        field: "dataset.path",
        hint: "Put your PNG/JPEG/WebP images (with .txt captions) in that folder.",
      });
    }
  }
  let livePrices: LivePrice[] = [];
  const endpoint = contract.trainer.endpoint ?? getCompatibility(contract.trainer.name, contract.base.model)?.endpoint;
  if (falKey && contract.trainer.name === "fal" && endpoint) {
    try {
      livePrices = await fetchFalPrices({ endpointIds: [endpoint], key: falKey, fetch, signal });
    } catch (error) {
      notes.push(`live fal price unavailable (${(error as Error).message}); using the price record`);
    }
  }
  const words = await loadEnglishWords();
  const tokenizer = loadClipTokenizer();
  const findings = lintContract(contract, { dataset, words, tokenizer, livePrices });
  const plan = planRun(contract, dataset, { livePrices });
  return { loaded, dataset, findings, plan, notes };
}
