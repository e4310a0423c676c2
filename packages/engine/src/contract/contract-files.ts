import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { resolve } from "node:path";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { baseSource } from "@loraspec/core/contract/base-path.js";
import type { Finding } from "@loraspec/core/lint/finding.js";

/**
 * The one resolution of a contract field that names a file or folder on this machine: relative to the contract's
 * folder, never the current one. check's scan, prep, train's job, validate and export-script all read
 * dataset.path, dataset.reg_path and validation.stack[i].lora through it; base.path has its own rule (core
 * contract/base-path.ts: an id form is a Hugging Face id, `~/` is home) and is listed here through it.
 */
export function resolveContractPath(contractDir: string, value: string): string {
  return resolve(contractDir, value);
}

const URL_FORM = /^https?:\/\//;

/** A stacked LoRA (validation.stack[i].lora): a URL as written (the sampler fetches it), else a local file. */
export function resolveStackLora(contractDir: string, value: string): string {
  return URL_FORM.test(value) ? value : resolveContractPath(contractDir, value);
}

export interface ContractFile {
  /** The field path, e.g. `validation.stack[1].lora`. */
  field: string;
  /** As written in the contract. */
  value: string;
  /** What must be there. */
  kind: "folder" | "file" | "weights";
  /** Resolved on this machine; undefined when it is not a local path (a URL, a Hugging Face id). */
  path?: string;
}

/** Every field of `contract` that names a file or folder, resolved as its consumer resolves it. */
export function contractFiles(contract: Contract, contractDir: string, home = homedir()): ContractFile[] {
  const files: ContractFile[] = [];
  const base = contract.base.path ? baseSource(contract.base.path, { contractDir, home }) : undefined;
  if (contract.base.path) files.push({ field: "base.path", value: contract.base.path, kind: "weights", path: base?.kind === "local" ? base.path : undefined });
  files.push({ field: "dataset.path", value: contract.dataset.path, kind: "folder", path: resolveContractPath(contractDir, contract.dataset.path) });
  if (contract.dataset.reg_path) files.push({ field: "dataset.reg_path", value: contract.dataset.reg_path, kind: "folder", path: resolveContractPath(contractDir, contract.dataset.reg_path) });
  contract.validation.stack.forEach((s, i) => {
    const path = resolveStackLora(contractDir, s.lora);
    files.push({ field: `validation.stack[${i}].lora`, value: s.lora, kind: "file", path: URL_FORM.test(path) ? undefined : path });
  });
  return files;
}

/**
 * check's finding for each stacked LoRA that is not there: validate stops at it (E_FILE_NOT_FOUND, the same field)
 * after the run, so check says it first. The other file fields have their own checks: dataset.path and
 * dataset.reg_path are scanned (E_DATASET_NOT_FOUND), base.path is preflighted (base-weights-missing).
 */
export function stackFileFindings(contract: Contract, contractDir: string): Finding[] {
  return contractFiles(contract, contractDir)
    .filter((f) => f.field.startsWith("validation.stack[") && f.path !== undefined && !existsSync(f.path))
    .map((f) => ({
      rule: "validation-stack-missing",
      severity: "error" as const,
      field: f.field,
      message: `the LoRA to stack with, '${f.value}', is not there: ${f.path}; \`loraspec validate\` would stop at it.`,
      fix: `Put the file at ${f.path}, fix the path (relative paths are from the contract's folder), or remove the entry.`,
      source: "ours: validate's stack check loads every validation.stack LoRA (contract/contract-files.ts)",
    }));
}
