import { isLoraspecError } from "@loraspec/core/errors.js";
import { parseContractText } from "@loraspec/core/contract/parse-contract.js";
import type { Contract } from "@loraspec/core/contract/schema.js";
import type { DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import type { Plan } from "@loraspec/core/plan/plan-run.js";
import { planFrom, type PlanSources } from "@loraspec/core/plan/plan-inputs.js";

/** One line in the findings panel: schema problems and lint findings look the same here. */
export interface LiveFinding {
  severity: "error" | "warning" | "info";
  code: string;
  field?: string;
  line?: number;
  message: string;
  hint?: string;
  source?: string;
}

export interface LiveCheck {
  contract?: Contract;
  findings: LiveFinding[];
  plan?: Plan;
  planError?: string;
}

/**
 * Checks contract text in the browser with the same pure core the CLI uses: the schema (with
 * file:line:field), then the plan. `regDataset`: the server's scan of dataset.reg_path (/api/dataset/summary's reg). Runs on every keystroke, so it never throws.
 */
export function checkContractText(text: string, dataset?: DatasetSummary, regDataset?: DatasetSummary): LiveCheck {
  let contract: Contract;
  try {
    contract = parseContractText({ text, file: "lora.yaml" });
  } catch (error) {
    if (!isLoraspecError(error)) return { findings: [{ severity: "error", code: "E_INTERNAL", message: String(error) }] };
    const problems = (error.details as { problems?: Array<{ line?: number; field: string; message: string }> } | undefined)?.problems;
    const findings: LiveFinding[] = problems?.length
      ? problems.map((p) => ({ severity: "error", code: error.code, field: p.field || undefined, line: p.line, message: p.message, hint: error.hint }))
      : [{ severity: "error", code: error.code, field: error.field, line: error.line, message: error.message, hint: error.hint }];
    return { findings };
  }
  const findings: LiveFinding[] = [];
  // The plan's sources as check hands them (core plan/plan-inputs.ts): the dataset's scan and the reg folder's.
  const sources: PlanSources = { dataset, ...(regDataset ? { regDataset } : {}) };
  let plan: Plan | undefined;
  let planError: string | undefined;
  try {
    plan = planFrom(contract, sources);
  } catch (error) {
    planError = error instanceof Error ? error.message : String(error);
  }
  try {
    for (const f of lintContract(contract, sources)) {
      findings.push({ severity: f.severity, code: f.rule, field: f.field, message: f.message, hint: f.fix, source: f.source });
    }
  } catch (error) {
    findings.push({ severity: "error", code: isLoraspecError(error) ? error.code : "E_INTERNAL", message: error instanceof Error ? error.message : String(error) });
  }
  const order = { error: 0, warning: 1, info: 2 } as const;
  findings.sort((a, b) => order[a.severity] - order[b.severity]);
  return { contract, findings, plan, planError };
}
