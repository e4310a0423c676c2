/**
 * The hint of an error that ended a run, as the user reads it: the cause's own advice with `<id>` (written
 * before the run existed) replaced by the run's id, then how to go on (`--resume`, said once) and where the
 * full log is. An error with no advice of its own (a worker code without a hint) points at the log first, so
 * the line never starts with a bare "then".
 */
export function runErrorHint(hint: string | undefined, runId: string): string {
  const own = hint?.replaceAll("<id>", runId).replace(/[;.\s]+$/, "");
  const log = `\`loraspec logs ${runId}\``;
  if (!own) return `the full log says why: ${log}; once the cause is fixed, \`loraspec train --resume ${runId}\` goes on from the last checkpoint`;
  const resume = own.includes("--resume") ? "" : `; then \`loraspec train --resume ${runId}\``;
  return `${own}${resume}${own.includes("loraspec logs") ? "" : ` (full log: ${log})`}`;
}
