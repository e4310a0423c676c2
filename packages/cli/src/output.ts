import pc from "picocolors";
import { isLoraspecError } from "@loraspec/core/errors.js";

/** True when we may draw bars and colours (a terminal, not CI, NO_COLOR respected by picocolors). */
export function isInteractive(stream: NodeJS.WriteStream = process.stderr): boolean {
  return Boolean(stream.isTTY) && !process.env.CI;
}

/** A user mistake prints as one clear line (where, what, what to do); a bug prints its stack. */
export function printError(error: unknown): void {
  if (isLoraspecError(error)) {
    const where = error.where ? `${error.where}: ` : "";
    process.stderr.write(`${pc.red("error")} ${pc.dim(`[${error.code}]`)} ${where}${error.message}\n`);
    if (error.hint) process.stderr.write(`  ${pc.dim("fix:")} ${error.hint}\n`);
    return;
  }
  const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`${pc.red("internal error")} (a bug in loraspec, please report it):\n${stack}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Renders rows as an aligned plain-text table. */
export function table(rows: ReadonlyArray<ReadonlyArray<string>>, header?: ReadonlyArray<string>): string {
  const all = header ? [header, ...rows] : rows;
  const widths: number[] = [];
  for (const row of all) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleLength(cell))));
  const line = (row: ReadonlyArray<string>) =>
    row.map((cell, i) => (i === row.length - 1 ? cell : cell + " ".repeat((widths[i] ?? 0) - visibleLength(cell)))).join("  ");
  const out = all.map(line);
  if (header) out.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return out.join("\n");
}

function visibleLength(s: string): number {
  // Strip ANSI colour codes so coloured cells still align.
  return s.replace(/\u001b\[[0-9;]*m/g, "").length;
}
