import { LoraspecError } from "@loraspec/core/errors.js";
import { FAL_PRICING_API } from "@loraspec/core/knowledge/prices.js";
import type { LivePrice } from "@loraspec/core/plan/plan-run.js";

export interface FetchFalPricesParams {
  endpointIds: readonly string[];
  /** FAL_KEY. */
  key: string;
  fetch?: typeof globalThis.fetch;
  signal?: AbortSignal;
  /** Base URL of the pricing API (tests point it at a local emulator). */
  url?: string;
  now?: () => Date;
}

interface PricingResponse {
  prices?: { endpoint_id: string; unit_price: number; unit: string; currency: string }[];
}

/**
 * Current prices from fal's pricing API: `GET /v1/models/pricing?endpoint_id=a,b` with
 * `Authorization: Key <FAL_KEY>` (trainers.md §4.2). A unit that names steps ("step",
 * "1000 steps") becomes a per-step price; any other unit is kept but not used per step.
 */
export async function fetchFalPrices({
  endpointIds,
  key,
  fetch = globalThis.fetch,
  signal,
  url = FAL_PRICING_API.url,
  now = () => new Date(),
}: FetchFalPricesParams): Promise<LivePrice[]> {
  if (endpointIds.length === 0) return [];
  const query = new URLSearchParams({ endpoint_id: endpointIds.join(",") });
  let response: Response;
  try {
    response = await fetch(`${url}?${query}`, { headers: { Authorization: `Key ${key}`, Accept: "application/json" }, signal });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw new LoraspecError("E_CANCELLED", "fetching fal prices was cancelled");
    throw new LoraspecError("E_REMOTE", `could not reach fal's pricing API: ${(error as Error).message}`, { cause: error });
  }
  if (response.status === 401 || response.status === 403) {
    throw new LoraspecError("E_REMOTE_AUTH", `fal's pricing API refused FAL_KEY (HTTP ${response.status})`, { hint: "Check FAL_KEY." });
  }
  if (!response.ok) throw new LoraspecError("E_REMOTE", `fal's pricing API answered HTTP ${response.status}`);
  const body = (await response.json()) as PricingResponse;
  const fetchedAt = now().toISOString();
  return (body.prices ?? []).map((p) => ({
    endpoint: p.endpoint_id,
    unitPrice: p.unit_price,
    unit: p.unit,
    currency: p.currency,
    fetchedAt,
    usdPerStep: p.currency.toUpperCase() === "USD" ? perStep(p.unit_price, p.unit) : undefined,
  }));
}

function perStep(price: number, unit: string): number | undefined {
  const m = /^\s*(?:per\s+)?([\d,]*)\s*(?:training\s+)?steps?\s*$/i.exec(unit);
  if (!m) return undefined;
  const n = m[1] ? Number(m[1].replace(/,/g, "")) : 1;
  return n > 0 ? price / n : undefined;
}
