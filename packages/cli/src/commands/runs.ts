import type { Command } from "commander";
import pc from "picocolors";
import { printJson, table } from "../output.js";
import { formatSeconds } from "../render-events.js";

/** `loraspec runs [--json]`: the project's runs, newest first (reconciled: dead runs show interrupted). */
export function registerRuns(program: Command): void {
  program
    .command("runs")
    .description("List the project's training runs: id, state, trainer, base, step/total, started, duration, output.")
    .option("--project <dir>", "the project folder (default: found from the current folder)")
    .option("--json", "print the runs as JSON")
    .action(async (opts: { project?: string; json?: boolean }) => {
      const { findProjectDir } = await import("@loraspec/engine/run/find-project-dir.js");
      const { openRunStore } = await import("@loraspec/engine/run/run-store.js");
      const { runDurationSeconds } = await import("@loraspec/engine/run/run-duration.js");
      const { isLoraspecError } = await import("@loraspec/core/errors.js");
      const projectDir = findProjectDir({ project: opts.project });
      const ioTrouble = (e: unknown) => isLoraspecError(e) && (e.code === "E_DISK_FULL" || e.code === "E_IO");
      let store;
      try {
        store = openRunStore({ projectDir });
      } catch (error) {
        // A full disk must not hide the runs: read the store read-only and say why nothing is saved.
        if (!ioTrouble(error)) throw error;
        process.stderr.write(`${pc.yellow("warning")} ${(error as Error).message}; listing read-only\n`);
        store = openRunStore({ projectDir, readonly: true });
      }
      try {
        // Runs whose process is gone are settled from their folders; where the store cannot take
        // the write (disk full) the settled state is shown anyway and saved by a later command.
        const settled = new Map(store.reconcile().map((r) => [r.id, r]));
        const runs = store.list().map((r) => settled.get(r.id) ?? r);
        for (const bad of store.refused) process.stderr.write(`${pc.yellow("warning")} [E_PATH_OUTSIDE_PROJECT] ${bad.message}; not listed (remove that row from .loraspec/loraspec.db)\n`);
        // A run-folder file too large to read (job.json, supervisor.pid): named; the run is listed as settled without it.
        for (const bad of store.problems) process.stderr.write(`${pc.yellow("warning")} [${bad.code}] run ${bad.id}: ${bad.message}\n`);
        const unsaved = runs.find((r) => r.unsaved);
        if (unsaved) process.stderr.write(`${pc.yellow("warning")} could not save the settled state of some runs (${unsaved.unsaved}); shown as settled\n`);
        // Over every attempt (attempts.jsonl, read line by line): a resumed run's earlier attempts count too.
        const durations = await Promise.all(runs.map((r) => runDurationSeconds(r)));
        if (opts.json) {
          printJson({ project: projectDir, runs: runs.map((r, i) => ({ ...r, durationSeconds: durations[i] ?? null })) });
          return;
        }
        if (runs.length === 0) {
          process.stdout.write(`no runs in ${projectDir} yet; start one with \`loraspec train\`\n`);
          return;
        }
        // Colour only on a terminal: `loraspec runs | grep` and CI logs get plain text.
        const tty = Boolean(process.stdout.isTTY);
        const colour: Record<string, (s: string) => string> = !tty ? {} : {
          succeeded: pc.green,
          failed: pc.red,
          interrupted: pc.yellow,
          cancelled: pc.dim,
          running: pc.cyan,
          starting: pc.cyan,
        };
        const rows = runs.map((r, i) => {
          const started = r.startedAt ?? r.createdAt;
          const seconds = durations[i];
          const duration = seconds === undefined ? "-" : formatSeconds(seconds);
          return [
            r.id,
            (colour[r.state] ?? ((s: string) => s))(r.state),
            r.trainer,
            r.base ?? "-",
            `${r.step ?? 0}/${r.totalSteps ?? "?"}`,
            started.replace("T", " ").slice(0, 19),
            duration,
            r.outputPath ?? (r.errorCode ? `${r.errorCode}: ${truncate(r.errorMessage ?? "", 60)}` : "-"),
          ];
        });
        process.stdout.write(`${table(rows, ["id", "state", "trainer", "base", "step", "started (UTC)", "duration", "output"])}\n`);
      } finally {
        store.close();
      }
    });
}

function truncate(s: string, n: number): string {
  const line = s.split("\n")[0] ?? "";
  return line.length > n ? `${line.slice(0, n - 1)}…` : line;
}
