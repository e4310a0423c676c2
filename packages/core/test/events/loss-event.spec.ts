import { describe, expect, it } from "vitest";
import { LoraspecEventSchema } from "@loraspec/core/events.js";

describe("the loss event", () => {
  it("takes lr as a number", () => {
    expect(LoraspecEventSchema.safeParse({ type: "loss", step: 3, loss: 0.12, lr: 1e-4 }).success).toBe(true);
  });

  it("refuses the repr of a CUDA tensor as lr (a fused AdamW's scheduler lr, stringified)", () => {
    const r = LoraspecEventSchema.safeParse({ type: "loss", step: 3, loss: 0.12, lr: "tensor(1.0000e-04, device='cuda:0')" });
    expect(r.success).toBe(false);
  });
});
