import { describe, expect, it } from "vitest";
import { runErrorHint } from "../../src/run/run-error-hint.js";

describe("runErrorHint: the fix line of an error that ended a run", () => {
  it.each([
    // No advice of its own (a worker code without a hint): the log first, never a bare "then".
    [undefined, "the full log says why: `loraspec logs R1`; once the cause is fixed, `loraspec train --resume R1` goes on from the last checkpoint"],
    ["", "the full log says why: `loraspec logs R1`; once the cause is fixed, `loraspec train --resume R1` goes on from the last checkpoint"],
    ["lower learning_rate", "lower learning_rate; then `loraspec train --resume R1` (full log: `loraspec logs R1`)"],
    ["lower learning_rate.", "lower learning_rate; then `loraspec train --resume R1` (full log: `loraspec logs R1`)"],
    ["free space, then `loraspec train --resume <id>`", "free space, then `loraspec train --resume R1` (full log: `loraspec logs R1`)"],
    ["see `loraspec logs <id>`", "see `loraspec logs R1`; then `loraspec train --resume R1`"],
  ])("%j", (hint, want) => {
    const text = runErrorHint(hint, "R1");
    expect(text).toBe(want);
    expect(text).not.toMatch(/^then|; ;|;$/);
    expect(text.match(/--resume/g)).toHaveLength(1);
  });
});
