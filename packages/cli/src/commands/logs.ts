import type { Command } from "commander";

/** `loraspec logs <id> [-f]`: the trainer's output for a run; -f follows it until the run ends. */
export function registerLogs(program: Command): void {
  program
    .command("logs")
    .description("Print a run's trainer log; with -f keep printing until the run ends.")
    .argument("<id>", "the run id (see `loraspec runs`)")
    .option("-f, --follow", "keep printing new lines while the run is active")
    .option("--project <dir>", "the project folder (default: found from the current folder)")
    .action(async (id: string, opts: { follow?: boolean; project?: string }) => {
      const { findProjectDir } = await import("@loraspec/engine/run/find-project-dir.js");
      const { followRunLog } = await import("@loraspec/engine/run/follow-run-log.js");
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once("SIGINT", stop);
      try {
        await followRunLog({
          projectDir: findProjectDir({ project: opts.project }),
          runId: id,
          follow: opts.follow,
          signal: controller.signal,
          write: (text) => process.stdout.write(text),
        });
      } finally {
        process.off("SIGINT", stop);
      }
    });
}
