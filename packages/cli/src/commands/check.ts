import type { Command } from "commander";
import pc from "picocolors";
import { printJson } from "../output.js";

/** `loraspec check [lora.yaml] [--json]`: lint the contract and a quick scan of the dataset. */
export function registerCheck(program: Command): void {
  program
    .command("check")
    .description("Lint lora.yaml and a quick scan of its dataset folder before any GPU time is spent (exit 0 ok, 1 errors, 2 unusable input).")
    .argument("[contract]", "the contract file", "lora.yaml")
    .option("--json", "print findings as JSON")
    .action(async (path: string, opts: { json?: boolean }) => {
      const { checkProject } = await import("@loraspec/engine/project/check-project.js");
      const { countBySeverity } = await import("@loraspec/core/lint/finding.js");
      // Unusable input throws: main prints it (as JSON with --json) and exits 2.
      const result = await checkProject({ path, falKey: process.env.FAL_KEY });
      const counts = countBySeverity(result.findings);
      process.exitCode = counts.error > 0 ? 1 : 0;
      if (opts.json) {
        printJson({
          ok: counts.error === 0,
          file: result.loaded.displayName,
          counts,
          images: result.dataset?.images.length,
          ...(result.regDataset ? { regImages: result.regDataset.images.length } : {}),
          findings: result.findings,
          notes: result.notes,
        });
        return;
      }
      const out: string[] = [];
      const label = { error: pc.red("error"), warning: pc.yellow("warning"), info: pc.cyan("info") } as const;
      for (const severity of ["error", "warning", "info"] as const) {
        const group = result.findings.filter((f) => f.severity === severity);
        if (group.length === 0) continue;
        out.push(pc.bold(`${severity === "error" ? "Errors" : severity === "warning" ? "Warnings" : "Notes"} (${group.length})`));
        for (const f of group) {
          out.push(`  ${label[severity]} ${pc.bold(f.rule)}${f.field ? pc.dim(` [${f.field}]`) : ""}: ${f.message}`);
          out.push(`    ${pc.dim("fix:")} ${f.fix}`);
          if (f.files?.length) out.push(`    ${pc.dim("files:")} ${f.files.join(", ")}`);
          out.push(`    ${pc.dim("source:")} ${pc.dim(f.source)}`);
        }
        out.push("");
      }
      for (const note of result.notes) out.push(pc.dim(`note: ${note}`));
      const images = result.dataset
        ? `${result.dataset.images.length} images${result.regDataset ? ` + ${result.regDataset.images.length} regularisation images` : ""}`
        : "dataset not scanned";
      const summary = `${result.loaded.displayName}: ${images}; ${counts.error} error(s), ${counts.warning} warning(s), ${counts.info} note(s)`;
      out.push(counts.error > 0 ? pc.red(`✗ ${summary}`) : pc.green(`✓ ${summary}`));
      process.stdout.write(`${out.join("\n")}\n`);
    });
}
