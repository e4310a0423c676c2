import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { LoraspecError } from "@loraspec/core/errors.js";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import type { Contract } from "@loraspec/core/contract/schema.js";

export interface LoadContractParams {
  /** Path to lora.yaml (default: ./lora.yaml). */
  path?: string;
  /** Folder relative paths resolve against (default: process.cwd()). */
  cwd?: string;
}

export interface LoadedContract {
  contract: Contract;
  /** Absolute path of the contract file. */
  file: string;
  /** Its folder: dataset and output paths in the contract resolve relative to it. */
  dir: string;
  /** The file name as the user gave it (for messages). */
  displayName: string;
}

/** Reads and validates a contract file; every problem names the file, line and field. */
export async function loadContract({ path = "lora.yaml", cwd = process.cwd() }: LoadContractParams = {}): Promise<LoadedContract> {
  const file = resolve(cwd, path);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new LoraspecError("E_CONTRACT_NOT_FOUND", "no contract file here", {
        file: path,
        hint: "Run `loraspec init` to write one, or pass the path: `loraspec check path/to/lora.yaml`.",
      });
    }
    if (code === "EISDIR") {
      throw new LoraspecError("E_CONTRACT_NOT_FOUND", "this is a folder, not a contract file", { file: path, hint: `Try ${path}/lora.yaml.` });
    }
    throw new LoraspecError("E_CONTRACT_NOT_FOUND", `cannot read the contract: ${(error as Error).message}`, { file: path, cause: error });
  }
  const contract = parseContractText({ text, file: path });
  return { contract, file, dir: dirname(file), displayName: path };
}

/** Absolute dataset folder of a loaded contract. */
export function resolveDatasetDir(loaded: Pick<LoadedContract, "contract" | "dir">): string {
  return resolve(loaded.dir, loaded.contract.dataset.path);
}
