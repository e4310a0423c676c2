import { describe, expect, it } from "vitest";
import { LoraspecError, exitCodeFor, httpStatusFor } from "../src/errors.js";

describe("LoraspecError", () => {
  it.each([
    ["E_CONTRACT_INVALID", 2, 422],
    ["E_LORA_UNUSED_KEYS", 1, 422],
    ["E_WORKER_CRASHED", 3, 500],
    ["E_PATH_OUTSIDE_PROJECT", 2, 403],
  ] as const)("%s maps to exit %i and HTTP %i", (code, exit, http) => {
    const error = new LoraspecError(code, "x");
    expect(exitCodeFor(error)).toBe(exit);
    expect(httpStatusFor(error)).toBe(http);
  });

  it("says where the problem is like a compiler", () => {
    const error = new LoraspecError("E_CONTRACT_INVALID", "must be positive", { file: "lora.yaml", line: 12, field: "hyperparameters.lr" });
    expect(error.where).toBe("lora.yaml:12: hyperparameters.lr");
  });

  it("treats unknown errors as internal", () => {
    expect(exitCodeFor(new Error("boom"))).toBe(70);
  });
});
