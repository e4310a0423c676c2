import { describe, expect, it } from "vitest";
import { FAL_TRAINER_ENDPOINTS } from "@loraspec/core/compile/fal/fal-endpoints.js";
import type { Contract } from "@loraspec/core/contract/schema.js";
import { lintContract } from "@loraspec/core/lint/lint-contract.js";
import type { LivePrice } from "@loraspec/core/plan/plan-run.js";
import { planRun } from "@loraspec/core/plan/plan-run.js";
import { makeContract } from "../compile/contract-fixture.js";

/**
 * limits.max_cost_usd is held or said not to be, never skipped in silence: over every trainer (each fal endpoint
 * on its base, with and without a live price in steps; each local trainer with and without hardware.price_per_hour),
 * a contract with a ceiling either has a cost estimate, or check says it cannot be checked, naming the field: an
 * error for fal (the job bills, and train refuses it unless --accept-unpriced: E_COST_UNKNOWN), a warning on a local GPU.
 */
const live = (endpoint: string): LivePrice[] => [{ endpoint, usdPerStep: 0.002, unitPrice: 2, unit: "1000 steps", currency: "USD", fetchedAt: "2026-12-06T00:00:00Z" }];

const cases: Array<{ label: string; c: Contract; livePrices: LivePrice[] }> = [
  ...FAL_TRAINER_ENDPOINTS.flatMap((e) =>
    [false, true].map((priced) => ({
      label: `fal ${e.endpoint}${priced ? " + live price" : ""}`,
      c: makeContract({ base: e.base, target: "character", trainer: "fal", overrides: { trainer: { name: "fal", endpoint: e.endpoint }, limits: { max_cost_usd: 1000 } } }),
      livePrices: priced ? live(e.endpoint) : [],
    })),
  ),
  ...(["kohya", "ai-toolkit", "diffusers"] as const).flatMap((trainer) =>
    [undefined, 0.7].map((price) => ({
      label: `${trainer}${price ? " + price_per_hour" : ""}`,
      c: makeContract({
        base: "sdxl",
        target: "character",
        trainer: trainer === "diffusers" ? "kohya" : trainer,
        overrides: { ...(trainer === "diffusers" ? { trainer: { name: "diffusers" } } : {}), hardware: { kind: "local", gpu: "RTX 4090", vram_gb: 24, ...(price ? { price_per_hour: price } : {}) }, limits: { max_cost_usd: 1000 } },
      }),
      livePrices: [],
    })),
  ),
];

describe("a cost ceiling is checked, or check says it cannot be", () => {
  it.each(cases)("$label", ({ c, livePrices }) => {
    const plan = planRun(c, undefined, { livePrices });
    const said = lintContract(c, { livePrices }).filter((f) => f.field === "limits.max_cost_usd" && /^cost-/.test(f.rule));
    if (plan.cost.usd !== undefined) {
      expect(said).toEqual([]); // held: 1000 USD is above every estimate here
      return;
    }
    const fal = c.trainer.name === "fal";
    expect(said.map((f) => [f.rule, f.severity])).toEqual([fal ? ["cost-limit-unchecked", "error"] : ["cost-unknown", "warning"]]);
    expect(said[0]!.message).toContain("limits.max_cost_usd");
    expect(said[0]!.fix).toMatch(fal ? /FAL_KEY.*remove limits\.max_cost_usd.*`loraspec train --accept-unpriced`/ : /price_per_hour.*remove limits\.max_cost_usd/);
  });

  it("some fal endpoints have no price record: the class is not empty", () => {
    const unpriced = cases.filter(({ c, livePrices }) => c.trainer.name === "fal" && planRun(c, undefined, { livePrices }).cost.usd === undefined);
    expect(unpriced.length).toBeGreaterThan(0);
  });
});
