/**
 * Compares trainer versions written as tags (`v0.10.1`, `0.12.26`, `v24.1.7`).
 * Returns undefined when either side is not a dotted number (a commit hash, a branch name):
 * the caller then says it cannot check instead of guessing.
 */
export function compareVersions(a: string, b: string): number | undefined {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) return undefined;
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

export function parseVersion(v: string): number[] | undefined {
  const m = /^v?(\d+(?:\.\d+){0,3})(?:[-+].*)?$/.exec(v.trim());
  return m ? m[1]!.split(".").map(Number) : undefined;
}
