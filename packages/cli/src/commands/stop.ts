import type { Command } from "commander";
import pc from "picocolors";
import { printJson } from "../output.js";

/** `loraspec stop <id>`: graceful stop (SIGINT, then SIGTERM, then SIGKILL), or a fal cancel. */
export function registerStop(program: Command): void {
  program
    .command("stop")
    .description("Stop a run: the trainer gets SIGINT to finish a save, then SIGTERM, then SIGKILL; a fal run is cancelled.")
    .argument("<id>", "the run id (see `loraspec runs`)")
    .option("--project <dir>", "the project folder (default: found from the current folder)")
    .option("--json", "print the result as JSON")
    .action(async (id: string, opts: { project?: string; json?: boolean }) => {
      const { findProjectDir } = await import("@loraspec/engine/run/find-project-dir.js");
      const { openRunStore } = await import("@loraspec/engine/run/run-store.js");
      const { stopRun } = await import("@loraspec/engine/run/stop-run.js");
      const projectDir = findProjectDir({ project: opts.project });
      const store = openRunStore({ projectDir });
      try {
        const run = store.get(id);
        let falRunner;
        if (run.trainer === "fal") {
          const { createFalRunner } = await import("@loraspec/engine/fal/create-fal-runner.js");
          falRunner = createFalRunner({});
        }
        const result = await stopRun({
          projectDir,
          runId: id,
          store,
          falRunner,
          onStep: (step) => {
            if (!opts.json) process.stderr.write(pc.dim(`sent ${step}\n`));
          },
        });
        if (opts.json) printJson({ id, state: result.run.state, signal: result.signal ?? null, remoteCancelled: result.remoteCancelled ?? false });
        else process.stderr.write(`run ${id}: ${result.run.state}${result.remoteCancelled ? " (fal cancel requested; billing may not stop at once)" : ""}\n`);
      } finally {
        store.close();
      }
    });
}
