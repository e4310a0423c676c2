import { createHash } from "node:crypto";
import { LoraspecError } from "@loraspec/core/errors.js";
import { planFrom } from "@loraspec/core/plan/plan-inputs.js";
import { resolveDatasetDir } from "../contract/load-contract.js";
import { trainingDatasetDir, type TrainingDataDir } from "../dataset/project-dataset.js";
import { checkProject, type CheckResult } from "../project/check-project.js";
import { buildTrainJob } from "./build-train-job.js";
import { nextOomFallback } from "./oom-fallback.js";
import { assertTrainerInstalled } from "./trainer-ready.js";
import type { RunRecord } from "./run-store.js";
import type { TrainJob } from "./train-job.js";

export interface PreparedTraining extends CheckResult {
  /** sha256 of the contract file, written into the LoRA's metadata. */
  contractHash: string;
  /** The images the run trains on, and whether they are `loraspec prep`'s output for this dataset. */
  trainingData: TrainingDataDir;
  /** Set when the plan's cost is above limits.max_cost_usd: the caller decides (--yes). */
  costOverLimit?: { usd: number; maxUsd: number };
  /** Set when a billed (fal) job has limits.max_cost_usd but no price is known for it: the caller refuses unless --accept-unpriced (costUncheckedError). */
  costUnchecked?: { maxUsd: number; basis: string; endpoint?: string };
  /** Builds the run's job (compiled files, command, parser) once the run row exists. */
  job: (run: RunRecord) => Promise<TrainJob>;
  /** For kohya/ai-toolkit with failure.on_oom: fallback: the next job to retry with after an OOM. */
  onOutOfMemory?: () => Promise<{ note: string; job: (run: RunRecord) => Promise<TrainJob> } | undefined>;
}

/** Lint errors about the cost ceiling: train refuses them itself unless --yes (costLimitError) or --accept-unpriced (costUncheckedError). */
const CALLER_DECIDES = ["cost-over-limit", "cost-limit-unchecked"];

/**
 * Everything `loraspec train` and the web page do before a run starts: check the contract and its
 * dataset, refuse on lint errors (the cost limit excepted: that is the caller's decision) and on a local
 * trainer that is not installed or fal without a key (run/trainer-ready.ts: no run is created for either), and
 * prepare the job factory with the contract's OOM fallbacks.
 */
export async function prepareTraining(params: { path: string; cwd?: string; falKey?: string; env?: NodeJS.ProcessEnv }): Promise<PreparedTraining> {
  const result = await checkProject({ path: params.path, cwd: params.cwd, falKey: params.falKey });
  const { loaded, plan, findings } = result;
  // The cost ceiling's two errors are the caller's decision (--yes, --accept-unpriced), the only lint errors it may accept.
  const errors = findings.filter((f) => f.severity === "error" && !CALLER_DECIDES.includes(f.rule));
  if (errors.length > 0) {
    throw new LoraspecError("E_CONTRACT_INVALID", `the contract has ${errors.length} error(s): ${errors.map((f) => f.rule).join(", ")}`, {
      file: loaded.displayName,
      hint: "run `loraspec check` for each problem and its fix",
      details: { findings: errors },
    });
  }
  const contract = loaded.contract;
  assertTrainerInstalled(contract.trainer.name, { env: params.env, optimizer: contract.hyperparameters.optimizer, falKey: params.falKey });
  const trainOn = await trainingDatasetDir(loaded.dir, resolveDatasetDir(loaded));
  // The text that was parsed, not a second read of the file (which may have changed since, or grown).
  const contractHash = createHash("sha256").update(loaded.text).digest("hex");
  const maxUsd = contract.limits?.max_cost_usd;
  const usd = plan.cost.usd;
  const costOverLimit = usd !== undefined && maxUsd !== undefined && usd > maxUsd ? { usd, maxUsd } : undefined;
  // Said by check as cost-limit-unchecked (error): the same condition, never a silent skip.
  const costUnchecked = findings.some((f) => f.rule === "cost-limit-unchecked") && maxUsd !== undefined ? { maxUsd, basis: plan.cost.basis, endpoint: plan.trainer.endpoint } : undefined;

  // sd-scripts and ai-toolkit crash on OOM; with failure.on_oom: fallback the run retries with the
  // contract's next fallback (the built-in worker applies its fallbacks itself).
  const tried: string[] = [];
  let current = contract;
  const onOutOfMemory =
    contract.trainer.name === "kohya" || contract.trainer.name === "ai-toolkit"
      ? async () => {
          const step = nextOomFallback(current, tried);
          if (!step) return undefined;
          tried.push(step.fallback);
          current = step.contract;
          const next = current;
          // The same sources as check's plan (the reg folder's scan, live prices): only the contract changed.
          const nextPlan = planFrom(next, result.sources);
          return {
            note: `${step.fallback} (${step.change})`,
            job: (run: RunRecord) => buildTrainJob({ contract: next, contractDir: loaded.dir, datasetDir: trainOn.dir, plan: nextPlan, run, contractHash }),
          };
        }
      : undefined;

  return {
    ...result,
    contractHash,
    trainingData: trainOn,
    costOverLimit,
    costUnchecked,
    job: (run) => buildTrainJob({ contract, contractDir: loaded.dir, datasetDir: trainOn.dir, plan, run, contractHash }),
    onOutOfMemory,
  };
}

/** The run's identity and job from a prepared training: what `train` and the page pass to startRun alike. */
export function startParams(prepared: PreparedTraining) {
  const { loaded, plan } = prepared;
  return {
    projectDir: loaded.dir,
    name: loaded.contract.name,
    base: loaded.contract.base.model,
    contractPath: loaded.file,
    trainer: loaded.contract.trainer.name,
    plan,
    job: prepared.job,
    onOutOfMemory: prepared.onOutOfMemory,
  };
}

export { costUncheckedError } from "./cost-guard.js";

export function costLimitError(over: { usd: number; maxUsd: number }, file?: string): LoraspecError {
  return new LoraspecError("E_COST_LIMIT", `the estimated cost $${over.usd.toFixed(2)} is over limits.max_cost_usd $${over.maxUsd.toFixed(2)}`, {
    file,
    field: "limits.max_cost_usd",
    hint: "lower the steps, raise limits.max_cost_usd, or accept the cost (--yes)",
  });
}
