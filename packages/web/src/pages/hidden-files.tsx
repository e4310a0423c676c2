import type { DatasetResponse } from "@loraspec/engine/server/api-types.js";

/**
 * The hidden files (names starting with ".") the Dataset page's grid leaves out, in one line the way
 * `loraspec check` says it (its dataset-hidden-files finding, first few named, from the server), so
 * nothing in the folder is left out unsaid. Nothing when there are none.
 */
export function HiddenFiles({ finding }: { finding?: DatasetResponse["hiddenFinding"] }) {
  if (!finding) return null;
  return (
    <p className="status status-info small" data-testid="hidden-files" title={finding.files?.join("\n")}>
      {finding.message}. {finding.fix}
    </p>
  );
}
