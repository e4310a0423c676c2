import { dirname, resolve } from "node:path";
import { resolveContractPath } from "./contract-files.js";
import { LoraspecError, isLoraspecError } from "@loraspec/core/errors.js";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { FILE_LIMITS } from "../fs/file-limits.js";
import { readSmallText } from "../fs/read-small-file.js";

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
  /** The file's text as parsed (one read: hashes and reports use this, not a second read). */
  text: string;
}

/**
 * Reads and validates a contract file; every problem names the file, line and field. A file over
 * FILE_LIMITS.contract is refused unread (E_FILE_TOO_LARGE), whatever sits at the path.
 */
export async function loadContract({ path = "lora.yaml", cwd = process.cwd() }: LoadContractParams = {}): Promise<LoadedContract> {
  const file = resolve(cwd, path);
  let text: string;
  try {
    text = await readSmallText({ file, limit: FILE_LIMITS.contract, shown: path });
  } catch (error) {
    if (isLoraspecError(error)) throw error;
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
  return { contract, file, dir: dirname(file), displayName: path, text };
}

/** Absolute dataset folder of a loaded contract. */
export function resolveDatasetDir(loaded: Pick<LoadedContract, "contract" | "dir">): string {
  return resolveContractPath(loaded.dir, loaded.contract.dataset.path);
}
