import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fetchFalPrices } from "@loraspec/engine/contract/fetch-fal-prices.js";
import { isLoraspecError } from "@loraspec/core/errors.js";

// A local emulator of fal's documented pricing API (GET /v1/models/pricing?endpoint_id=a,b, Authorization: Key <key>).
const PRICES: Record<string, { unit_price: number; unit: string; currency: string }> = {
  "fal-ai/flux-2-trainer": { unit_price: 0.0064, unit: "steps", currency: "USD" },
  "fal-ai/turbo-flux-trainer": { unit_price: 2.4, unit: "1000 steps", currency: "USD" },
  "fal-ai/z-image-trainer": { unit_price: 0.00111, unit: "compute seconds", currency: "USD" },
};
let server: Server;
let url: string;
const seen: { auth?: string; query?: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    seen.push({ auth: req.headers.authorization, query: u.searchParams.get("endpoint_id") ?? undefined });
    if (req.headers.authorization !== "Key good-key") {
      res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ detail: "Unauthorized" }));
      return;
    }
    const ids = (u.searchParams.get("endpoint_id") ?? "").split(",");
    const prices = ids.filter((id) => PRICES[id]).map((id) => ({ endpoint_id: id, ...PRICES[id]! }));
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ prices, next_cursor: null, has_more: false }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/models/pricing`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe("fetchFalPrices against a local pricing-API emulator", () => {
  it("reads per-step and per-1000-step units, keeps other units without a per-step figure", async () => {
    const prices = await fetchFalPrices({
      endpointIds: ["fal-ai/flux-2-trainer", "fal-ai/turbo-flux-trainer", "fal-ai/z-image-trainer"],
      key: "good-key",
      url,
      now: () => new Date("2026-11-29T00:00:00Z"),
    });
    expect(seen.at(-1)).toEqual({ auth: "Key good-key", query: "fal-ai/flux-2-trainer,fal-ai/turbo-flux-trainer,fal-ai/z-image-trainer" });
    const by = Object.fromEntries(prices.map((p) => [p.endpoint, p]));
    expect(by["fal-ai/flux-2-trainer"]?.usdPerStep).toBe(0.0064);
    expect(by["fal-ai/turbo-flux-trainer"]?.usdPerStep).toBeCloseTo(0.0024, 8);
    expect(by["fal-ai/z-image-trainer"]?.usdPerStep).toBeUndefined();
    expect(by["fal-ai/flux-2-trainer"]?.fetchedAt).toBe("2026-11-29T00:00:00.000Z");
  });

  it("maps a refused key to E_REMOTE_AUTH", async () => {
    const error = await fetchFalPrices({ endpointIds: ["fal-ai/flux-2-trainer"], key: "bad", url }).catch((e: unknown) => e);
    expect(isLoraspecError(error) && error.code).toBe("E_REMOTE_AUTH");
  });

  it("maps an unreachable host to E_REMOTE", async () => {
    const error = await fetchFalPrices({ endpointIds: ["x"], key: "k", url: "http://127.0.0.1:1/v1/models/pricing" }).catch((e: unknown) => e);
    expect(isLoraspecError(error) && error.code).toBe("E_REMOTE");
  });
});
