import type { RequestMiddleware } from "@fal-ai/client";
import { FAL_POLICY } from "./fal-policy.js";

/**
 * Looks up, on fal's Platform API, the request a lost submit may have created: `GET
 * https://api.fal.ai/v1/models/requests/by-endpoint?endpoint_id=...&start=...` lists an endpoint's
 * requests with their `json_input` (https://fal.ai/docs/platform-apis/v1/models/requests/by-endpoint).
 * A request is ours when its input is the input we sent (the dataset URL in it is unique per upload).
 */
export type LookupAnswer =
  | { kind: "found"; requestId: string }
  /** fal lists every request of the window and none is ours: the submit never made a job. */
  | { kind: "none" }
  /** The list could not be read, or it cannot tell (inputs not stored): only the user can decide. */
  | { kind: "unsure"; reason: string; candidates: string[] };

interface Item {
  request_id?: string;
  sent_at?: string;
  json_input?: unknown;
}

export async function findSubmittedRequest(params: {
  endpoint: string;
  /** The input as sent. */
  input: Record<string, unknown>;
  /** When the submit was sent (the journal's time). */
  at: string;
  credentials: string;
  fetch: typeof fetch;
  middleware?: RequestMiddleware;
  signal?: AbortSignal;
}): Promise<LookupAnswer> {
  const slackMs = FAL_POLICY.lookupClockSlackMs.value;
  const start = new Date(Date.parse(params.at) - slackMs).toISOString();
  const items: Item[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < FAL_POLICY.lookupMaxPages.value; page++) {
    const query = new URLSearchParams({ endpoint_id: params.endpoint, start, limit: "100", ...(cursor ? { cursor } : {}) });
    let request = { method: "GET", url: `https://api.fal.ai/v1/models/requests/by-endpoint?${query}`, headers: { Authorization: `Key ${params.credentials}`, Accept: "application/json" } as Record<string, string> };
    if (params.middleware) request = { ...request, ...(await params.middleware(request)) } as typeof request;
    let body: { items?: Item[]; next_cursor?: string | null; has_more?: boolean };
    try {
      const response = await params.fetch(request.url, { method: "GET", headers: request.headers, signal: params.signal });
      if (!response.ok) return { kind: "unsure", reason: `fal's request list answered HTTP ${response.status}`, candidates: [] };
      body = (await response.json()) as typeof body;
    } catch (error) {
      return { kind: "unsure", reason: `fal's request list could not be read (${(error as Error).message})`, candidates: [] };
    }
    items.push(...(body.items ?? []));
    if (!body.has_more || !body.next_cursor) {
      cursor = undefined;
      break;
    }
    cursor = body.next_cursor;
  }
  if (cursor) return { kind: "unsure", reason: "fal lists more requests in that window than loraspec reads", candidates: [] };
  const wanted = canonical(params.input);
  const ours = items.filter((i) => i.json_input !== undefined && canonical(i.json_input) === wanted && typeof i.request_id === "string");
  if (ours.length === 1) return { kind: "found", requestId: ours[0]!.request_id! };
  const ids = (list: Item[]) => list.map((i) => i.request_id).filter((id): id is string => typeof id === "string");
  if (ours.length > 1) return { kind: "unsure", reason: `${ours.length} requests carry this run's input`, candidates: ids(ours) };
  const blind = items.filter((i) => i.json_input === undefined);
  if (blind.length > 0) return { kind: "unsure", reason: "fal does not show the inputs of some requests in that window (payload storage off?)", candidates: ids(blind) };
  return { kind: "none" };
}

/** JSON with sorted keys, so two equal inputs compare equal whatever their key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : v,
  );
}
