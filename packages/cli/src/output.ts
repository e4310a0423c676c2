import pc from "picocolors";
import { isLoraspecError, type LoraspecError } from "@loraspec/core/errors.js";

/** True when we may draw bars and colours (a terminal, not CI, NO_COLOR respected by picocolors). */
export function isInteractive(stream: NodeJS.WriteStream = process.stderr): boolean {
  return Boolean(stream.isTTY) && !process.env.CI;
}

/** A user mistake prints as one clear line (where, what, what to do); a bug prints its stack. */
export function printError(error: unknown): void {
  if (isLoraspecError(error)) {
    process.stderr.write(`${pc.red("error")} ${pc.dim(`[${error.code}]`)} ${errorWhat(error)}\n`);
    if (error.hint) process.stderr.write(`  ${pc.dim("fix:")} ${error.hint}\n`);
    return;
  }
  const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`${pc.red("internal error")} (a bug in loraspec, please report it):\n${stack}\n`);
}

/**
 * `file:line: field: message`, each named once: a file or field the message already names (`no such file: x.safetensors`,
 * `--output is an empty name`) is not repeated in front of it (it printed `x: <file>: no such file: x`). A file with a
 * line number stays in front (the message does not carry the line).
 */
export function errorWhat(error: LoraspecError): string {
  const parts: string[] = [];
  if (error.file && (error.line || !mentions(error.message, error.file))) parts.push(error.line ? `${error.file}:${error.line}` : error.file);
  if (error.field && !mentions(error.message, error.field)) parts.push(error.field);
  return parts.length > 0 ? `${parts.join(": ")}: ${error.message}` : error.message;
}

/** Whether `text` names `name` as a whole word: bounded by the ends, spaces, quotes, brackets or punctuation, not inside a longer name. */
function mentions(text: string, name: string): boolean {
  const at = (i: number) => text.indexOf(name, i);
  for (let i = at(0); i >= 0; i = at(i + 1)) {
    const before = text[i - 1];
    const after = text.slice(i + name.length, i + name.length + 2);
    const startOk = before === undefined || /[\s'"`(\[:=]/.test(before);
    const endOk = after === "" || /^[\s'"`)\],:;]/.test(after) || /^\.(\s|$)/.test(after);
    if (startOk && endOk) return true;
  }
  return false;
}

/** One JSON value as one line on stdout (--json output is JSON lines, so never pretty-printed). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** An error as the final JSON object of a --json run: `{ ok: false, error: { code, message, ... } }`. */
export function printJsonError(error: unknown): void {
  const body = isLoraspecError(error)
    ? error.toJSON()
    : { code: "E_INTERNAL", message: error instanceof Error ? error.message : String(error), retryable: false };
  printJson({ ok: false, error: body });
  // A bug still leaves its stack for the report, on stderr.
  if (!isLoraspecError(error)) printError(error);
}

/**
 * With --json, stdout carries JSON lines only. Installed once by `main` for every command: a line
 * that is not a JSON object or array (a table, a progress line, a library's chatter) goes to
 * stderr instead. Returns the function that flushes and restores stdout.
 */
export function jsonOnlyStdout(): () => void {
  const stdout = process.stdout;
  const original = stdout.write;
  let pending = "";
  const route = (line: string) => {
    if (isJsonLine(line)) original.call(stdout, `${line}\n`);
    else if (line.trim() !== "") process.stderr.write(`${line}\n`);
  };
  stdout.write = function write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    pending += typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString(typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
    for (let i = pending.indexOf("\n"); i >= 0; i = pending.indexOf("\n")) {
      route(pending.slice(0, i));
      pending = pending.slice(i + 1);
    }
    const done = typeof encoding === "function" ? encoding : callback;
    if (typeof done === "function") queueMicrotask(() => (done as () => void)());
    return true;
  } as typeof stdout.write;
  return () => {
    if (pending) route(pending);
    pending = "";
    stdout.write = original;
  };
}

function isJsonLine(line: string): boolean {
  const t = line.trim();
  if (!(t.startsWith("{") || t.startsWith("["))) return false;
  try {
    JSON.parse(t);
    return true;
  } catch {
    return false;
  }
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
