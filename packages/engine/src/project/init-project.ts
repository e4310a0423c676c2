import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { LoraspecError } from "@loraspec/core/errors.js";
import { recommendContract, type InitChoices, type Recommendation } from "@loraspec/core/contract/recommend-contract.js";
import { renderContractYaml } from "@loraspec/core/contract/render-contract-yaml.js";
import { atomicWrite } from "../fs/atomic-write.js";
import { loadEnglishWords } from "../contract/english-words.js";
import { scanDataset } from "../dataset/scan-dataset.js";

export interface InitProjectParams {
  choices: InitChoices;
  /** Where to write (default ./lora.yaml). */
  path?: string;
  cwd?: string;
  force?: boolean;
}

export interface InitProjectResult extends Recommendation {
  file: string;
  yaml: string;
  /** The images prep will use that the dataset folder held when init ran (undefined: none, or no folder). */
  imageCount?: number;
}

/**
 * Writes lora.yaml with values chosen from the knowledge base, each commented with why and its
 * source. Refuses to overwrite an existing file unless `force` (E_FILE_EXISTS).
 */
export async function initProject({ choices, path = "lora.yaml", cwd = process.cwd(), force = false }: InitProjectParams): Promise<InitProjectResult> {
  const file = resolve(cwd, path);
  if (!force && existsSync(file)) {
    throw new LoraspecError("E_FILE_EXISTS", "a contract already exists here", { file: path, hint: "Pass --force to overwrite it, or --out to write elsewhere." });
  }
  const datasetDir = resolve(dirname(file), choices.dataset ?? "./dataset");
  const imageCount = choices.imageCount ?? (await countImages(datasetDir));
  // Held to check: init refuses (with check's reasons) rather than write a contract check rejects.
  const rec = recommendContract({ ...choices, imageCount }, { words: await loadEnglishWords() });
  const yaml = renderContractYaml({
    ...rec,
    schemaRef: findSchema(),
    header: [
      `Written by \`loraspec init\` on ${new Date().toISOString().slice(0, 10)}. Each chosen value says why, with its source.`,
      "Check it with `loraspec check`, see the numbers with `loraspec plan`.",
    ],
  });
  await atomicWrite(file, yaml);
  return { ...rec, file, yaml, imageCount };
}

async function countImages(dir: string): Promise<number | undefined> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) return undefined;
  // Only images prep will use: readable, and not a duplicate of another (the same scan check runs).
  const n = (await scanDataset({ dir })).images.length;
  return n > 0 ? n : undefined;
}

/** The installed JSON Schema (for editors), found by walking up from this module (src or dist). */
function findSchema(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "schema", "lora-contract.schema.json");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}
