import type { Command } from "commander";
import pc from "picocolors";
import { LoraspecError } from "@loraspec/core/errors.js";
import { ACCEPT_UNPRICED_FLAG } from "@loraspec/core/lint/accept-unpriced.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import { isInteractive } from "../output.js";
import { renderEvents } from "../render-events.js";

interface TrainOptions {
  yes?: boolean;
  acceptUnpriced?: boolean;
  resume?: string;
  resubmit?: boolean;
  json?: boolean;
  project?: string;
}

/**
 * `loraspec train [lora.yaml] [--yes] [--accept-unpriced] [--resume <id>] [--json]`: lint, plan, confirm the
 * cost/VRAM/time plan, compile for the contract's trainer, run it under the supervisor with a
 * live bar, and say where the LoRA is. Ctrl-C stops the trainer gracefully (fal: stops watching;
 * the job keeps running) and leaves the run interrupted for `--resume`.
 */
export function registerTrain(program: Command): void {
  program
    .command("train")
    .description("Train the LoRA the contract describes: check, plan and confirm, then run and supervise the trainer.")
    .argument("[contract]", "the contract file", "lora.yaml")
    .option("-y, --yes", "do not ask for confirmation (needed off a terminal); accept a cost over limits.max_cost_usd")
    .option(ACCEPT_UNPRICED_FLAG, "fal: submit although no price is known to hold the job to limits.max_cost_usd (--yes does not)")
    .option("--resume <id>", "resume an interrupted, failed or cancelled run from its last checkpoint")
    .option("--resubmit", "fal: submit again although an earlier submit's answer was lost (may bill twice)")
    .option("--project <dir>", "the project folder for --resume (default: found from the current folder)")
    .option("--json", "print events as JSON lines")
    .action(async (path: string, opts: TrainOptions) => {
      const controller = new AbortController();
      const onSignal = () => {
        if (controller.signal.aborted) return;
        process.stderr.write(`\n${pc.yellow("stopping")} (the trainer gets time to finish a save; the run can be resumed)\n`);
        controller.abort();
      };
      for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, onSignal);
      try {
        const run = opts.resume ? await resume(opts, controller.signal) : await start(path, opts, controller.signal);
        if (!opts.json && run) {
          process.stderr.write(`${pc.green("✓")} run ${run.id} succeeded. LoRA: ${pc.bold(String(run.outputPath))}\n`);
        }
      } finally {
        for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.off(sig, onSignal);
      }
    });
}

async function falRunnerIfNeeded(trainer: string) {
  if (trainer !== "fal") return undefined;
  const { createFalRunner } = await import("@loraspec/engine/fal/create-fal-runner.js");
  return createFalRunner({});
}

async function resume(opts: TrainOptions, signal: AbortSignal) {
  const { findProjectDir } = await import("@loraspec/engine/run/find-project-dir.js");
  const { openRunStore } = await import("@loraspec/engine/run/run-store.js");
  const { resumeRun } = await import("@loraspec/engine/run/run-training.js");
  const projectDir = findProjectDir({ project: opts.project });
  const store = openRunStore({ projectDir });
  try {
    const run = store.get(opts.resume!);
    const falRunner = await falRunnerIfNeeded(run.trainer);
    if (!opts.json) process.stderr.write(`${pc.bold("resuming")} run ${run.id} (${run.trainer}, ${run.state})\n`);
    // The fix an error asked for is in the contract: resume recompiles from it (changes shown and
    // recorded; base, rank and targets refused). A contract that is gone leaves the job as written.
    const { existsSync } = await import("node:fs");
    const contractPath = run.contractPath;
    const recompile =
      contractPath && existsSync(contractPath)
        ? async () => {
            const { prepareTraining, costLimitError, costUncheckedError } = await import("@loraspec/engine/run/prepare-training.js");
            const prepared = await prepareTraining({ path: contractPath, falKey: process.env.FAL_KEY });
            if (prepared.costOverLimit && !opts.yes) throw costLimitError(prepared.costOverLimit, prepared.loaded.displayName);
            if (prepared.costUnchecked && !opts.acceptUnpriced) throw costUncheckedError(prepared.costUnchecked, prepared.loaded.displayName);
            return { plan: prepared.plan, job: prepared.job, contractFile: prepared.loaded.displayName };
          }
        : undefined;
    if (!recompile && !opts.json) process.stderr.write(`${pc.yellow("warning")} the run's contract ${contractPath ?? "(none recorded)"} is gone: resuming with the job as compiled at the start\n`);
    return await renderRun(resumeRun({ projectDir, runId: run.id, store, signal, falRunner, resubmit: opts.resubmit, yes: opts.yes, acceptUnpriced: opts.acceptUnpriced, recompile }), opts);
  } finally {
    store.close();
  }
}

async function start(path: string, opts: TrainOptions, signal: AbortSignal) {
  const { prepareTraining, costLimitError, costUncheckedError, startParams } = await import("@loraspec/engine/run/prepare-training.js");
  const { startRun } = await import("@loraspec/engine/run/run-training.js");
  const prepared = await prepareTraining({ path, falKey: process.env.FAL_KEY });
  const { loaded, plan } = prepared;
  const contract = loaded.contract;
  if (!opts.json) {
    process.stderr.write(`${planSummary(plan, contract.limits?.max_cost_usd)}\n`);
    const { describeTrainingData } = await import("@loraspec/engine/dataset/project-dataset.js");
    process.stderr.write(`${pc.dim(`dataset: ${describeTrainingData(prepared.trainingData, loaded.displayName)}`)}\n`);
  }
  // The cost limit is train's own decision: refused, or accepted with --yes. A limit no price can check (fal) has its
  // own override, --accept-unpriced: --yes is passed by every scripted run (no prompt off a terminal) and would skip it unseen.
  if (prepared.costOverLimit && !opts.yes) throw costLimitError(prepared.costOverLimit, loaded.displayName);
  if (prepared.costUnchecked) {
    if (!opts.acceptUnpriced) throw costUncheckedError(prepared.costUnchecked, loaded.displayName);
    if (!opts.json) process.stderr.write(`${pc.yellow("warning")} limits.max_cost_usd $${prepared.costUnchecked.maxUsd.toFixed(2)} is not checked: no price is known (${prepared.costUnchecked.basis}); submitting because of --accept-unpriced\n`);
  }
  if (!opts.yes) {
    if (!process.stdin.isTTY || !isInteractive()) {
      throw new LoraspecError("E_USAGE", "not a terminal: pass --yes to start training without the confirmation prompt");
    }
    const { confirm, isCancel } = await import("@clack/prompts");
    const answer = await confirm({ message: "Start training with this plan?" });
    if (isCancel(answer) || !answer) throw new LoraspecError("E_CANCELLED", "training not started");
  }
  const falRunner = await falRunnerIfNeeded(contract.trainer.name);
  return renderRun(
    startRun({
      ...startParams(prepared),
      signal,
      falRunner,
      yes: opts.yes,
      acceptUnpriced: opts.acceptUnpriced,
      onCreated: (run) => {
        if (!opts.json) process.stderr.write(`${pc.dim(`run ${run.id}: ${run.runDir}  (follow: loraspec logs ${run.id} -f)`)}\n`);
      },
    }),
    opts,
  );
}

async function renderRun(gen: AsyncGenerator<LoraspecEvent, import("@loraspec/engine/run/run-store.js").RunRecord>, opts: TrainOptions) {
  let record: import("@loraspec/engine/run/run-store.js").RunRecord | undefined;
  async function* events(): AsyncGenerator<LoraspecEvent> {
    let next = await gen.next();
    while (!next.done) {
      yield next.value;
      next = await gen.next();
    }
    record = next.value;
  }
  await renderEvents(events(), { json: opts.json });
  return record;
}

/** The plan train confirms, with only the settings the trainer is handed (plan.receives, as `loraspec plan`). */
export function planSummary(plan: import("@loraspec/core/plan/plan-run.js").Plan, maxCost?: number): string {
  const shown = plan.receives.settings;
  const lr = plan.learningRate.toExponential().replace(/\.?0+e/, "e");
  const cost = plan.cost.usd !== undefined ? `$${plan.cost.usd.toFixed(2)}` : "unknown";
  const limit = maxCost !== undefined ? ` (limit $${maxCost.toFixed(2)})` : "";
  const time = plan.selected ? `${plan.selected.hours} h on ${plan.selected.label}` : plan.trainer.name === "fal" ? "chosen by fal" : "unknown (no GPU in the contract)";
  const settings = [
    `${plan.steps} steps`,
    shown.learningRate ? `LR ${lr}` : "",
    shown.rank ? `rank ${plan.rank}/${plan.alpha}` : "",
    shown.batch ? `batch ${plan.effectiveBatch}` : "",
    `${plan.images.count} images${shown.resolution ? ` at ${plan.resolution} px` : ""}`,
  ].filter(Boolean);
  const budget = [shown.gpu ? `VRAM ~${plan.vram.totalGb} GB` : "", `time ${time}`, `cost ${cost}${limit}`].filter(Boolean);
  return [
    pc.bold(`Plan for ${plan.name}`),
    `  ${plan.base.label} · ${plan.trainer.name}${plan.trainer.endpoint ? ` (${plan.trainer.endpoint})` : ""} · ${plan.target}`,
    `  ${settings.join(" · ")}`,
    `  ${budget.join(" · ")}`,
    ...(!shown.gpu && plan.receives.why ? [pc.dim(`  not sent: ${plan.receives.why}`)] : []),
  ].join("\n");
}
