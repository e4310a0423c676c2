import type { Sourced } from "./types.js";

/**
 * fal.ai trainer prices as published in April 2026 (source guide). Live prices from fal's
 * pricing API win when FAL_KEY is set (engine: fetchFalPrices); these are the fallback.
 */
export interface FalPriceRecord extends Sourced {
  endpoint: string;
  /** USD per training step (per-1,000-step prices divided by 1,000). */
  usdPerStep?: number;
  /** A flat part of the price (e.g. the FLUX.2 edit trainer's reference image). */
  usdFlat?: number;
  /** Billed minimum steps. */
  minSteps?: number;
  /** The price as published, for display. */
  published: string;
}

const GUIDE = "loraspec issue #2 (source guide, fal.ai prices as published April 2026)";
const AS_OF = "2026-04-30";

export const FAL_PRICES: readonly FalPriceRecord[] = [
  {
    endpoint: "fal-ai/flux-2-trainer",
    usdPerStep: 0.008,
    published: "$0.008 per step",
    source: GUIDE,
    asOf: AS_OF,
    verified: false,
    note: "fal's llms.txt (perf-reliability.md §1.1) gives 0.0064 x steps; the live API decides when FAL_KEY is set.",
  },
  { endpoint: "fal-ai/turbo-flux-trainer", usdPerStep: 2.4 / 1000, published: "$2.40 per 1,000 steps", source: `${GUIDE}; perf-reliability.md §1.1 (fal llms.txt)`, asOf: AS_OF },
  { endpoint: "fal-ai/flux-kontext-trainer", usdPerStep: 2.5 / 1000, minSteps: 500, published: "$2.50 per 1,000 steps, 500-step minimum ($1.25)", source: GUIDE, asOf: AS_OF, verified: false },
  {
    endpoint: "fal-ai/flux-2-trainer/edit",
    usdFlat: 18.99,
    published: "~$18.99 for one reference plus 1,000 steps",
    source: GUIDE,
    asOf: AS_OF,
    verified: false,
    note: "Priced per job as published; not split into a per-step figure.",
  },
  {
    endpoint: "fal-ai/flux-lora-fast-training",
    usdPerStep: 2 / 1000,
    published: "$2 per run, scaling linearly with steps (1,000-step default assumed)",
    source: "perf-reliability.md §1.1 (fal.ai model page)",
    asOf: AS_OF,
    verified: false,
  },
];

export function getFalPrice(endpoint: string): FalPriceRecord | undefined {
  return FAL_PRICES.find((p) => p.endpoint === endpoint);
}

/** fal's pricing API (used by the engine when FAL_KEY is set). */
export const FAL_PRICING_API: Sourced & { url: string } = {
  url: "https://api.fal.ai/v1/models/pricing",
  source: "https://docs.fal.ai/platform-apis/v1/models/pricing (trainers.md §4.2)",
  asOf: "2026-08-23",
};
