import type { Command } from "commander";
import pc from "picocolors";
import { printJson } from "../output.js";

// The status column: a word and its colour (NO_COLOR and pipes get plain words from picocolors).
const MARK = { ok: ["ok", pc.green], missing: ["missing", pc.red], warn: ["warn", pc.yellow], info: ["--", pc.dim] } as const;
const MARK_WIDTH = 7;

/** `loraspec doctor [--json]`: what is installed and usable, each line with its fix. */
export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description("Say what is installed and usable: Node, the Python worker and torch (CUDA device), Kohya / ai-toolkit, FAL_KEY, the Hugging Face cache and token, chromium; each with its fix.")
    .option("--json", "print the report as JSON")
    .action(async (opts: { json?: boolean }) => {
      const { runDoctor } = await import("@loraspec/engine/doctor/run-doctor.js");
      const report = await runDoctor();
      if (!report.ok) process.exitCode = 1;
      if (opts.json) {
        printJson(report);
        return;
      }
      const width = Math.max(...report.items.map((item) => item.label.length));
      const lines: string[] = [];
      for (const item of report.items) {
        const [word, colour] = MARK[item.status];
        lines.push(`${colour(word.padEnd(MARK_WIDTH))} ${item.label.padEnd(width)}  ${item.summary}`);
        if (item.fix && item.status !== "ok") lines.push(`${" ".repeat(MARK_WIDTH + 1 + width + 2)}${pc.dim("fix:")} ${item.fix}`);
      }
      process.stdout.write(`${lines.join("\n")}\n`);
    });
}
