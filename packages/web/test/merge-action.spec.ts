import { describe, expect, it } from "vitest";
import { mergeAction } from "../src/pages/lora-page.js";

describe("the LoRA page's merge button", () => {
  it("scales one file with cat and merges two or more, as `loraspec merge` does", () => {
    expect(mergeAction(1, "cat")).toMatchObject({ label: "Scale" });
    expect(mergeAction(1, "cat").blocked).toBeUndefined();
    expect(mergeAction(2, "ties")).toEqual({ label: "Merge" });
    expect(mergeAction(3, "cat")).toEqual({ label: "Merge" });
  });

  it("is off with no file, and with one file and a method that needs two (the CLI's E_USAGE)", () => {
    expect(mergeAction(0, "cat").blocked).toBeTruthy();
    for (const method of ["linear", "ties", "dare", "svd"]) expect(mergeAction(1, method).blocked).toContain("cat");
  });
});
