import { basename } from "node:path";
import { LoraspecError, isLoraspecError } from "@loraspec/core/errors.js";
import type { LoraspecEvent } from "@loraspec/core/events.js";
import type { RunRecord, RunStore } from "../run/run-store.js";
import type { RunSummary, RunsService } from "./deps.js";

/**
 * Runs for the web page, through the same functions as `loraspec train`: check the contract,
 * build the job for its trainer, and start it under the supervisor. The run writes its own
 * events.jsonl; the server drains the generator in the background and streams that file.
 */
export function createRunsService(params: { projectDir: string; onError?: (error: unknown) => void }): RunsService & { close(): void } {
  const { projectDir } = params;
  let store: RunStore | undefined;
  /** Runs this server is supervising right now (their generators are being drained here). */
  const supervising = new Set<string>();
  let starting = false;
  const open = async () => (store ??= (await import("../run/run-store.js")).openRunStore({ projectDir }));
  const drain: Drain = (id, gen) => drainInBackground(id, gen, supervising, params.onError);

  return {
    async list() {
      const s = await open();
      // Reconcile marks a starting run without a pid as gone; while this server is itself
      // starting one (pid not yet recorded) that would be wrong, so it waits until we are idle.
      if (supervising.size === 0) s.reconcile();
      return listSummaries(s);
    },
    async get(id) {
      const s = await open();
      const run = s.find(id);
      if (!run) throw new LoraspecError("E_RUN_NOT_FOUND", `No run "${id}" in this project.`);
      return summary(run);
    },
    async start({ contractFile }) {
      const s = await open();
      // One GPU, one run: a second start waits for the user, not for a silent OOM.
      if (supervising.size > 0 || starting) {
        throw new LoraspecError("E_RUN_STATE", `Run ${[...supervising][0] ?? "(starting)"} is still running.`, { hint: "Wait for it to finish, or stop it first." });
      }
      starting = true;
      try {
        return await startOne({ projectDir, store: s, contractFile, drain });
      } finally {
        starting = false;
      }
    },
    async stop(id) {
      const s = await open();
      const { stopRun } = await import("../run/stop-run.js");
      await stopRun({ projectDir, runId: id, store: s });
    },
    async resume(id) {
      const s = await open();
      // Right after a stop, this run's supervisor may still be winding down: give it a moment.
      for (let i = 0; i < 50 && supervising.has(id); i++) await new Promise((r) => setTimeout(r, 100));
      if (supervising.size > 0 || starting) throw new LoraspecError("E_RUN_STATE", "Another run is still running.", { hint: "Wait for it, or stop it first." });
      return resumeOne({ projectDir, store: s, id, drain });
    },
    close() {
      store?.close();
      store = undefined;
    },
  };
}

/** Hands a started run's event generator to the background (drainInBackground). */
type Drain = (id: string, gen: AsyncGenerator<LoraspecEvent, RunRecord>) => void;

const summary = (r: RunRecord): RunSummary => ({ ...r });

/** The store's runs, each with the run-folder file reconcile could not read (too large to be one) named on it. */
function listSummaries(s: RunStore): RunSummary[] {
  const problems = new Map(s.problems.map(({ id, ...problem }) => [id, problem]));
  return s.list().map((r) => {
    const problem = problems.get(r.id);
    return problem ? { ...summary(r), problem } : summary(r);
  });
}

/** Drains a run's generator in the background, with the run counted in `supervising` until it ends. */
function drainInBackground(id: string, gen: AsyncGenerator<LoraspecEvent, RunRecord>, supervising: Set<string>, onError?: (error: unknown) => void): void {
  supervising.add(id);
  void (async () => {
    try {
      for (let next = await gen.next(); !next.done; next = await gen.next()) {
        // events.jsonl already has every event; nothing to do with them here.
      }
    } catch (error) {
      // A failed or cancelled run is recorded in the store by the supervisor already.
      if (!isLoraspecError(error)) onError?.(error);
    } finally {
      supervising.delete(id);
    }
  })();
}

/** Checks and prepares the contract, starts its run and returns once the run is recorded; the rest goes on in the background. */
async function startOne({ projectDir, store: s, contractFile, drain }: { projectDir: string; store: RunStore; contractFile: string; drain: Drain }): Promise<{ id: string }> {
  const { prepareTraining, costLimitError, costUncheckedError, startParams } = await import("../run/prepare-training.js");
  const { startRun } = await import("../run/run-training.js");
  const prepared = await prepareTraining({ path: contractFile, cwd: projectDir, falKey: process.env.FAL_KEY });
  const { loaded } = prepared;
  const contract = loaded.contract;
  // The page has no --yes nor --accept-unpriced: a plan over the contract's cost limit, or one the limit cannot be checked on, is refused.
  if (prepared.costOverLimit) throw costLimitError(prepared.costOverLimit, basename(contractFile));
  if (prepared.costUnchecked) throw costUncheckedError(prepared.costUnchecked, basename(contractFile), "page");
  const falRunner = contract.trainer.name === "fal" ? (await import("../fal/create-fal-runner.js")).createFalRunner({}) : undefined;
  let runId: string | undefined;
  const gen = startRun({
    ...startParams(prepared),
    store: s,
    falRunner,
    onCreated: (run) => {
      runId = run.id;
    },
  });
  // The run row exists before the first event; after that the run goes on in the background.
  let first: IteratorResult<LoraspecEvent, RunRecord>;
  try {
    first = await gen.next();
  } catch (error) {
    if (!runId) throw error;
    return { id: runId }; // it failed right after creation; the store says why
  }
  if (!runId) throw new LoraspecError("E_INTERNAL", "The run did not start.");
  if (!first.done) drain(runId, gen);
  return { id: runId };
}

/** Runs a stopped run again from where it stopped, in the background; a refusal (E_RUN_STATE and the like) is thrown right away. */
async function resumeOne({ projectDir, store: s, id, drain }: { projectDir: string; store: RunStore; id: string; drain: Drain }): Promise<{ id: string }> {
  const { resumeRun } = await import("../run/run-training.js");
  const run = s.get(id);
  const falRunner = run.trainer === "fal" ? (await import("../fal/create-fal-runner.js")).createFalRunner({}) : undefined;
  const gen = resumeRun({ projectDir, runId: id, store: s, falRunner });
  const first = await gen.next(); // throws E_RUN_STATE and the like right away
  if (!first.done) drain(id, gen);
  return { id };
}
