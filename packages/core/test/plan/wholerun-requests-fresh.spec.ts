import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { WHOLERUN_REQUESTS_FILE, wholerunRequests } from "../../../../bench/gpu-wholerun-requests.js";

// bench/gpu-wholerun.py runs the committed requests on the GPU machine (which has no Node): they must be what
// core compiles now, or the whole-run rows time a request `loraspec train` no longer sends. Regenerate with
// `npx tsx bench/gpu-wholerun-requests.ts` when this fails.
describe("the committed whole-run bench requests", () => {
  it("are what core compiles today", () => {
    const committed = JSON.parse(readFileSync(WHOLERUN_REQUESTS_FILE, "utf8")) as { steps: number };
    expect(committed).toEqual(JSON.parse(JSON.stringify(wholerunRequests(committed.steps))));
  });
});
