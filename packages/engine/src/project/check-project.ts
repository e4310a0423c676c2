import { isLoraspecError, LoraspecError } from "@loraspec/core/errors.js";
import type { Contract } from "@loraspec/core/contract/schema.js";
import type { DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import { getCompatibility } from "@loraspec/core/knowledge/trainers.js";
import { FAL_PRICING_API } from "@loraspec/core/knowledge/prices.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import type { Finding } from "@loraspec/core/lint/finding.js";
import type { LivePrice, Plan } from "@loraspec/core/plan/plan-run.js";
import { planFrom, type PlanSources } from "@loraspec/core/plan/plan-inputs.js";
import { loadContract, resolveDatasetDir, type LoadedContract } from "../contract/load-contract.js";
import { describeTrainingData, trainingDataOf } from "../dataset/project-dataset.js";
import { loadEnglishWords } from "../contract/english-words.js";
import { loadClipTokenizer } from "../contract/clip-tokenizer.js";
import { findingApplies, trainerReceives } from "@loraspec/core/compile/trainer-receives.js";
import { fetchFalPrices } from "../contract/fetch-fal-prices.js";
import { readStoredPins } from "../dataset/stored-pins.js";
import { hiddenFilesNote } from "../dataset/list-dataset-files.js";
import { scanDataset, type DatasetScan } from "../dataset/scan-dataset.js";
import { prepShapes, scanShapes } from "../dataset/prep-shapes.js";
import { prepSettingsFor } from "../dataset/prepare-dataset.js";
import { datasetFindings } from "../dataset/dataset-findings.js";
import { trainerView } from "./trainer-view.js";
import { regFindings } from "../dataset/reg-findings.js";
import { trainerFolderReading } from "@loraspec/core/knowledge/trainer-folder-reading.js";
import { getBaseModel } from "@loraspec/core/knowledge/base-models.js";
import { preflightBase } from "./preflight-base.js";
import { resolveContractPath, stackFileFindings } from "../contract/contract-files.js";
import { assertTrainerInstalled } from "../run/trainer-ready.js";

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
  /** Environment for the Hugging Face cache lookup (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface CheckResult {
  loaded: LoadedContract;
  /**
   * The images the run trains on (the plan counts them): the dataset's prepared folder's, or the dataset as the
   * contract's trainer reads it (project/trainer-view.ts); prep's count when both agree.
   */
  dataset?: DatasetSummary;
  /** The regularisation images (dataset.reg_path), when the contract names a folder. */
  regDataset?: DatasetSummary;
  findings: Finding[];
  plan: Plan;
  /** What `plan` was made from (core plan/plan-inputs.ts): a re-plan of an edited contract (the OOM fallback's) uses these. */
  sources: PlanSources;
  /** Things the user should know that are not findings (a failed live price fetch). */
  notes: string[];
}

/**
 * Loads the contract, scans the dataset as prep will see it, fetches live fal prices when it can,
 * and lints. Unusable input throws (exit 2): bad YAML, unknown model, a missing dataset folder or
 * one with no image files. Bad images are findings (prep skips them), never a throw, so every other
 * finding still shows; the plan counts only the images that will train.
 */
export async function checkProject({ path, cwd, falKey, fetch, signal, skipDataset = false, env }: CheckProjectParams = {}): Promise<CheckResult> {
  const loaded = await loadContract({ path, cwd });
  const { contract } = loaded;
  const notes: string[] = [];
  let dataset: DatasetSummary | undefined;
  let regDataset: DatasetSummary | undefined;
  const scans: Array<{ scan: DatasetScan; field: string }> = [];
  const pinsFindings: Finding[] = [];
  let stored: Awaited<ReturnType<typeof readStoredPins>> | undefined;
  if (!skipDataset) {
    // The user's keep/drop choices on duplicates made for this dataset (as prep reads them), not for
    // another dataset's nor reg images; a bad pins file is one finding, and the scan goes on without it.
    stored = await readStoredPins({ projectDir: loaded.dir, datasetDir: resolveDatasetDir(loaded) });
    if (stored.finding) pinsFindings.push(stored.finding);
    const resolution = contract.dataset.resolution ?? getBaseModel(contract.base.model)?.nativeResolution;
    // Upscale warnings as prep will cut each image for this contract's trainer (ai-toolkit keeps a small image's size).
    const shapes = scanShapes(contract, resolution);
    const scan = async (folder: string, field: "dataset.path" | "dataset.reg_path"): Promise<DatasetSummary> => {
      const dir = resolveContractPath(loaded.dir, folder);
      const pins = field === "dataset.path" ? stored?.pins : undefined;
      const found = await scanDataset({ dir, displayPath: folder, captionExtension: contract.captions.extension, contractFile: loaded.displayName, field, resolution, shapes, pinned: pins?.keep, distinct: pins?.distinct });
      if (found.candidates === 0) {
        throw new LoraspecError("E_DATASET_EMPTY", `no images in ${field === "dataset.path" ? "dataset" : "regularisation"} folder '${folder}'`, {
          file: loaded.displayName,
          field,
          hint: `${field === "dataset.path" ? "Put your PNG/JPEG/WebP images (with .txt captions) in that folder." : "Put the regularisation images (with their own captions) in that folder, or remove dataset.reg_path."}${hiddenFilesNote(found.hidden)}`,
        });
      }
      scans.push({ scan: found, field });
      return found;
    };
    dataset = await scan(contract.dataset.path, "dataset.path");
    if (contract.dataset.reg_path) {
      regDataset = await scan(contract.dataset.reg_path, "dataset.reg_path");
      const uncaptioned = regDataset.images.filter((i) => !i.caption).length;
      if (uncaptioned > 0) {
        notes.push(`${uncaptioned} of ${regDataset.images.length} regularisation images have no caption; they train with an empty one`);
      }
    }
  }
  let livePrices: LivePrice[] = [];
  const endpoint = contract.trainer.endpoint ?? getCompatibility(contract.trainer.name, contract.base.model)?.endpoint;
  if (falKey && contract.trainer.name === "fal" && endpoint) {
    try {
      // The runner's host override (LORASPEC_FAL_API_URL: a gateway, the tests' emulator) holds for prices too.
      const api = (env ?? process.env).LORASPEC_FAL_API_URL;
      const url = api ? FAL_PRICING_API.url.replace("https://api.fal.ai/", `${api.replace(/\/$/, "")}/`) : undefined;
      livePrices = await fetchFalPrices({ endpointIds: [endpoint], key: falKey, fetch, signal, ...(url ? { url } : {}) });
    } catch (error) {
      notes.push(`live fal price unavailable (${(error as Error).message}); using the price record`);
    }
  }
  const words = await loadEnglishWords();
  const tokenizer = loadClipTokenizer();
  // Preflight: the base weights (headers and configs only). The dataset scan above is prep's own
  // (listing, probe, size rules, duplicates), so `dataset` holds the images a run will train on.
  const preflight = [...pinsFindings, ...scans.flatMap((s) => datasetFindings(s.scan, s.field)), ...(await preflightBase({ contract, contractDir: loaded.dir, env })), ...stackFileFindings(contract, loaded.dir), ...trainerReadiness(contract, env)];
  const order = { error: 0, warning: 1, info: 2 } as const;
  // What the run will train on (prep's folder and its crop, or the dataset): dataset.crop is checked against it.
  const trainingData = skipDataset ? undefined : await trainingDataOf(loaded.dir, resolveDatasetDir(loaded));
  // A prepared folder made from another dataset (another contract's, or before dataset.path changed) is not used: say so.
  if (trainingData && !trainingData.prepared && trainingData.others) notes.push(`the run trains on ${describeTrainingData(trainingData, loaded.displayName)}`);
  // What the run trains on, read as its trainer reads a folder: a stale prepared folder, or images the trainer
  // never reads or cannot open, are findings, and the plan counts what would train (project/trainer-view.ts).
  const mainScan = scans.find((s) => s.field === "dataset.path");
  const view = trainingData && mainScan ? trainerView({ scan: mainScan.scan, field: mainScan.field, trainingData, trainer: contract.trainer.name, contractFile: loaded.displayName, wanted: { settings: wantedPrepSettings(contract), pins: stored?.pins } }) : undefined;
  if (view) preflight.push(...view.findings);
  // The regularisation folder is always handed on as it is: counted as the trainer reads it (dataset/reg-findings.ts).
  const regScan = scans.find((s) => s.field === "dataset.reg_path");
  if (regScan) {
    const reg = regFindings(regScan.scan, trainerFolderReading(contract.trainer.name));
    preflight.push(...reg.findings);
    regDataset = { ...regScan.scan, images: reg.images };
  }
  // check's own findings are held to what the trainer is handed as lint's are (core compile/trainer-receives.ts, one home).
  const receives = trainerReceives(contract);
  // Lint judges every image scanned (view.lint); the plan counts the ones that train (view.trains). Both take the reg
  // folder and prices as PlanSources (core plan/plan-inputs.ts), as the OOM fallback's re-plan does from `sources`.
  const findings = [...lintContract(contract, { dataset: view?.lint ?? dataset, regDataset, livePrices, words, tokenizer, trainingData }), ...preflight.filter((f) => findingApplies(f.rule, receives))].sort((a, b) => order[a.severity] - order[b.severity]);
  if (view) dataset = view.trains;
  const sources: PlanSources = { dataset, regDataset, livePrices };
  const plan = planFrom(contract, sources);
  return { loaded, dataset, regDataset, findings, plan, sources, notes };
}

/**
 * The settings `loraspec prep` would make the prepared folder with for this contract (its resolution, aspect, crop and
 * shape rule, as the CLI's prep passes them: prepSettingsFor, prepShapes), which check compares with the manifest's.
 * Undefined when prep could not run with them (no resolution, a bucket set that cannot exist: their own findings).
 */
function wantedPrepSettings(contract: Contract): Record<string, unknown> | undefined {
  const resolution = contract.dataset.resolution ?? getBaseModel(contract.base.model)?.nativeResolution;
  if (!resolution) return undefined;
  try {
    const aspect = contract.dataset.aspect;
    return prepSettingsFor({ resolution, aspect, crop: contract.dataset.crop, shapes: prepShapes({ contract, aspect, resolution }) });
  } catch {
    return undefined;
  }
}

/**
 * What `train` checks on this machine before a run exists (run/trainer-ready.ts: the local trainer installed, the
 * built-in trainer's optimizer package), said by check as a warning: the contract may be trained on another machine.
 */
function trainerReadiness(contract: Contract, env: NodeJS.ProcessEnv | undefined): Finding[] {
  try {
    assertTrainerInstalled(contract.trainer.name, { env, optimizer: contract.hyperparameters.optimizer });
    return [];
  } catch (error) {
    if (!isLoraspecError(error)) throw error;
    const field = error.field ?? "trainer.name";
    return [{ rule: "trainer-not-ready", severity: "warning", field, message: `\`loraspec train\` on this machine refuses it now (${error.code}): ${error.message}.`, fix: error.hint ?? "", source: "ours: run/trainer-ready.ts, what train checks before a run exists" }];
  }
}
