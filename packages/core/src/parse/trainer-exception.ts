/**
 * The trainer's own exception out of its stderr. A crashed sd-scripts run ends with two Python
 * tracebacks: the trainer's (the cause) and `accelerate launch`'s (subprocess.CalledProcessError,
 * which only says the child failed); torchrun adds ChildFailedError, ai-toolkit re-raises after
 * printing "Error running job: ...". This finds the last traceback that is not a launcher's and
 * returns its exception line (with the continuation lines some exceptions print, e.g. the missing
 * keys of a state_dict RuntimeError).
 */
export interface TrainerException {
  /** The exception's class as printed (`ValueError`, `requests.exceptions.ConnectionError`). */
  type: string;
  /** Its message (first line plus up to a few continuation lines). */
  message: string;
  /** The innermost frame of its traceback (`File "train_util.py", line 5296, in ...`), when printed. */
  where?: string;
}

/** Exceptions raised by launchers about a failed child: never the cause. */
const LAUNCHER_EXCEPTIONS = [/(^|\.)CalledProcessError$/, /(^|\.)ChildFailedError$/];
const LAUNCHER_FRAMES = [/accelerate[\\/]commands[\\/]launch\.py/, /torch[\\/]distributed[\\/](elastic|run\.py)/];
const EXCEPTION_LINE = /^([A-Za-z_][\w.]*)(?::\s?(.*))?$/;
const MAX_CONTINUATION = 4;
const MAX_MESSAGE = 600;

export function lastTrainerException(lines: readonly string[]): TrainerException | undefined {
  let found: TrainerException | undefined;
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*Traceback \(most recent call last\):\s*$/.test(lines[i]!)) continue;
    const parsed = parseTraceback(lines, i + 1);
    if (parsed && !parsed.launcher) found = parsed.exception;
    if (parsed) i = parsed.end - 1;
  }
  if (found) return found;
  // ai-toolkit prints this before re-raising; with the traceback lost, it is still the cause.
  const printed = [...lines].reverse().find((l) => /^Error running job: /.test(l));
  return printed ? { type: "Exception", message: printed.replace(/^Error running job: /, "").slice(0, MAX_MESSAGE) } : undefined;
}

function parseTraceback(lines: readonly string[], start: number): { exception: TrainerException; launcher: boolean; end: number } | undefined {
  let where: string | undefined;
  let launcher = false;
  let i = start;
  // Frames: indented `File "...", line N, in f` lines and their source lines.
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    if (!/^\s/.test(line) || line.trim() === "") break;
    const frame = /^\s+File "([^"]+)", line (\d+)(?:, in (.+))?/.exec(line);
    if (frame) {
      where = `${frame[1]}:${frame[2]}${frame[3] ? ` in ${frame[3]}` : ""}`;
      if (LAUNCHER_FRAMES.some((p) => p.test(frame[1]!))) launcher = true;
    }
  }
  // Log lines of other threads/processes may sit between the frames and the exception line.
  for (let skipped = 0; i < lines.length && skipped < 5; i++, skipped++) {
    const m = EXCEPTION_LINE.exec(lines[i]!.trimEnd());
    if (!m || !looksLikeException(m[1]!)) continue;
    const type = m[1]!;
    const parts = [m[2] ?? ""];
    let j = i + 1;
    for (; j < lines.length && parts.length <= MAX_CONTINUATION && /^\s+\S/.test(lines[j]!) && !/^\s+File "/.test(lines[j]!); j++) parts.push(lines[j]!.trim());
    const message = parts.filter(Boolean).join(" ").slice(0, MAX_MESSAGE);
    return { exception: { type, message, where }, launcher: launcher || LAUNCHER_EXCEPTIONS.some((p) => p.test(type)), end: j };
  }
  return undefined;
}

function looksLikeException(type: string): boolean {
  const last = type.split(".").pop()!;
  return /^[A-Z]\w*$/.test(last) && (type.includes(".") || /(Error|Exception|Exit|Interrupt|Iteration)$/.test(last));
}

/** One line for an error message: `ValueError: msg (at file:line in f)`. */
export function describeTrainerException(e: TrainerException): string {
  return `${e.type}${e.message ? `: ${e.message}` : ""}${e.where ? ` (at ${e.where})` : ""}`;
}
