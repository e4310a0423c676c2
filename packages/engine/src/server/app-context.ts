import { createHash, createHmac } from "node:crypto";
import { realpathSync } from "node:fs";
import { realpath } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { ServerDeps } from "./deps.js";
import { DatasetCache } from "./dataset-cache.js";
import { contractBasics, readContractText, type ContractBasics } from "./project-files.js";
import { projectRelative, resolveInsideProject } from "../fs/safe-path.js";
import { isLoraspecError } from "@loraspec/core/errors.js";

export interface CreateAppParams extends ServerDeps {
  /** The project folder: every file the API reads or writes is inside it. */
  projectDir: string;
  /** The access token every request must carry. */
  token: string;
  /** The contract file, relative to the project. */
  contractFile?: string;
  /** The built web page (packages/web/dist); omitted: API only. */
  webDist?: string;
  /** Example contracts (with their datasets) a new project can start from. */
  examplesDir?: string;
  /** Host names accepted in the Host header (set when bound to loopback). */
  allowedHosts?: readonly string[];
  /** How often a live event stream looks for new lines (ms). */
  pollMs?: number;
}

/** What every route module shares: the confined project, the contract, the dataset cache. */
export interface AppContext {
  params: CreateAppParams;
  /** The real path of the project folder. */
  projectDir: string;
  /** A stable id of the project (its real absolute path, hashed): keys the page's drafts. */
  projectId: string;
  contractRel: string;
  contractFile: string;
  pollMs: number;
  /** The capability that lets sandboxed documents load project files without the cookie. */
  filesKey: string;
  /** Resolves a project-relative path, refusing anything outside the project. */
  inside(path: string): Promise<string>;
  /** Confines an absolute path the server holds (a run folder from the database) to the project. */
  confine(absolute: string): Promise<string>;
  basics(): Promise<ContractBasics>;
  datasetDir(): Promise<string>;
  datasetCache: DatasetCache;
}

export function createAppContext(params: CreateAppParams): AppContext {
  // The real path: every path the API hands back is relative to it, symlinked /tmp or not.
  const projectDir = realOrResolved(params.projectDir);
  const contractRel = params.contractFile ?? "lora.yaml";
  const contractFile = join(projectDir, contractRel);
  const inside = (path: string) => resolveInsideProject({ projectDir, path });
  // No contract yet (or one mid-edit) means the defaults; one too large to read is said, never read as empty.
  const basics = async () =>
    contractBasics(
      await readContractText(contractFile, contractRel).catch((error: unknown) => {
        if (isLoraspecError(error) && error.code === "E_FILE_TOO_LARGE") throw error;
        return "";
      }),
    );
  return {
    params,
    projectDir,
    projectId: createHash("sha256").update(projectDir).digest("base64url").slice(0, 16),
    contractRel,
    contractFile,
    pollMs: params.pollMs ?? 400, // live enough for a loss chart, cheap for a 2-core box
    filesKey: filesKeyFor(params.token),
    inside,
    confine: async (absolute: string) => {
      // Through its real path, so a project opened via a symlink still owns its run folders.
      const full = resolve(projectDir, absolute);
      const real = await realpath(full).catch(() => full);
      return inside(projectRelative(projectDir, real) || ".");
    },
    basics,
    datasetDir: async () => inside((await basics()).datasetPath.replace(/^\.\//, "") || "."),
    datasetCache: new DatasetCache(),
  };
}

/** Derived from the token, so it changes when the token is rotated and never reveals it. */
export function filesKeyFor(token: string): string {
  return createHmac("sha256", token).update("loraspec project files").digest("base64url").slice(0, 24);
}

function realOrResolved(dir: string): string {
  try {
    return realpathSync(resolve(dir));
  } catch {
    return resolve(dir);
  }
}
