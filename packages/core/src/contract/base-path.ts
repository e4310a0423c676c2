/**
 * Where a `base.path` (or validate's `--base`) points: a folder or file on this machine, or a
 * Hugging Face id. One home for check's preflight, train's job, the compilers and validate.
 *
 * Local iff it starts with `./`, `../`, `/`, `~/` (or is `~`), `.\`, `..\`, `~\`, a Windows drive
 * (`C:\`, `C:/`), or is exactly `.` / `..`. Everything else (`org/name`, `name`, `models/sdxl`) is
 * a Hugging Face id: diffusers' from_pretrained would first look for a folder of that name relative
 * to the *worker's* working directory, which is not the contract's folder, so loraspec requires the
 * explicit `./models/sdxl` form for a folder beside the contract (check warns when one is there:
 * rule base-path-looks-local).
 */
export type BaseSource = { kind: "local"; path: string } | { kind: "hub"; id: string };

export interface BaseSourceContext {
  /** Relative local paths resolve against it (the contract's folder; validate's --base: the cwd). Absolute. */
  contractDir: string;
  /** `~` expands to it (engine: os.homedir(); core reads no environment). Absolute. */
  home: string;
}

const DRIVE = /^[A-Za-z]:[\\/]/;

/** True when `path` is written as a local path (see the rule above), before any resolution. */
export function isLocalBaseForm(path: string): boolean {
  return path === "." || path === ".." || path === "~" || /^(\.{1,2}|~)[\\/]/.test(path) || path.startsWith("/") || DRIVE.test(path);
}

/** `path` as the trainer should open it: a local path made absolute (`~` expanded, relative ones against contractDir), or a hub id as written. */
export function baseSource(path: string, { contractDir, home }: BaseSourceContext): BaseSource {
  if (!isLocalBaseForm(path)) return { kind: "hub", id: path };
  if (path.startsWith("/") || DRIVE.test(path)) return { kind: "local", path: normalize(path, []) };
  if (path === "~" || /^~[\\/]/.test(path)) return { kind: "local", path: normalize(home, segments(path.slice(1))) };
  return { kind: "local", path: normalize(contractDir, segments(path)) };
}

// Both separators split a relative part: a contract written on Windows (`.\models\sdxl`) reads the same here.
function segments(rel: string): string[] {
  return rel.split(/[\\/]+/).filter((s) => s.length > 0);
}

/** anchor + rest with `.` and `..` collapsed (node:path's resolve, without node:path: core stays pure). */
function normalize(anchor: string, rest: string[]): string {
  const drive = DRIVE.test(anchor) ? anchor.slice(0, 2) : undefined;
  const sep = drive ? "\\" : "/";
  const parts = drive ? segments(anchor.slice(2)) : anchor.split("/").filter((s) => s.length > 0);
  const out: string[] = [];
  for (const part of [...parts, ...rest]) {
    if (part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return `${drive ?? ""}${sep}${out.join(sep)}`;
}
