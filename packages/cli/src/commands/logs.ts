import type { Command } from "commander";

/** `loraspec logs <id> [-f]`: the trainer's output for a run; -f follows it until the run ends. */
export function registerLogs(program: Command): void {
  program
    .command("logs")
    .description("Print a run's trainer log; with -f keep printing until the run ends.")
    .argument("<id>", "the run id (see `loraspec runs`)")
    .option("-f, --follow", "keep printing new lines while the run is active")
    .option("--project <dir>", "the project folder (default: found from the current folder)")
    .option("--json", "print the log as JSON: one {run, log} document, or with -f one {run, text} line per chunk")
    .action(async (id: string, opts: { follow?: boolean; project?: string; json?: boolean }) => {
      const { findProjectDir } = await import("@loraspec/engine/run/find-project-dir.js");
      const { followRunLog } = await import("@loraspec/engine/run/follow-run-log.js");
      const { printJson } = await import("../output.js");
      const controller = new AbortController();
      // --json: the trainer's text as JSON strings (it is not JSON itself); without -f, one document at the end.
      let log = "";
      const write = opts.json ? (opts.follow ? (text: string) => printJson({ run: id, text }) : (text: string) => void (log += text)) : (text: string) => void process.stdout.write(text);
      const stop = () => controller.abort();
      process.once("SIGINT", stop);
      try {
        await followRunLog({
          projectDir: findProjectDir({ project: opts.project }),
          runId: id,
          follow: opts.follow,
          signal: controller.signal,
          write,
        });
        if (opts.json && !opts.follow) printJson({ ok: true, run: id, log });
      } finally {
        process.off("SIGINT", stop);
      }
    });
}
