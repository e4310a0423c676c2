import type { RequestMiddleware } from "@fal-ai/client";

/**
 * One POST of a job to fal's queue, never retried. @fal-ai/client 1.10.1 retries `queue.submit` on
 * 429/502/503/504 and on dropped connections (QUEUE_RETRY_CONFIG, not configurable per call): when
 * the first POST created the job and then answered 504, the retry makes a second paid job. So the
 * submit is ours: success, a definite refusal (the job does not exist), or an unknown outcome.
 */
export type SubmitAnswer =
  | { kind: "submitted"; requestId: string }
  /** fal answered a definite no (400/401/403/404/422): no job was created. */
  | { kind: "rejected"; status: number; body: unknown }
  /** No answer, or one that does not say whether the job exists (429, 5xx, a torn body). */
  | { kind: "unknown"; reason: string; status?: number };

/** 4xx answers that still do not prove the job was not created (a timeout, a rate limiter in front). */
const NOT_A_REFUSAL = new Set([408, 409, 425, 429]);

export async function submitOnce(params: {
  endpoint: string;
  input: Record<string, unknown>;
  credentials: string;
  fetch: typeof fetch;
  /** The same request rewriting as the client's (other hosts, a proxy, the emulator). */
  middleware?: RequestMiddleware;
  signal?: AbortSignal;
}): Promise<SubmitAnswer> {
  let request = {
    method: "POST",
    url: `https://queue.fal.run/${params.endpoint}`,
    headers: { Authorization: `Key ${params.credentials}`, Accept: "application/json", "Content-Type": "application/json" } as Record<string, string>,
  };
  if (params.middleware) request = { ...request, ...(await params.middleware(request)) } as typeof request;
  let response: Response;
  try {
    response = await params.fetch(request.url, { method: request.method, headers: request.headers, body: JSON.stringify(params.input), signal: params.signal });
  } catch (error) {
    // The request may have reached fal before the connection (or our process's patience) ended.
    return { kind: "unknown", reason: `the connection ended before fal answered (${(error as Error).message})` };
  }
  const text = await response.text().catch(() => "");
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: kept as text for the message
  }
  if (response.ok) {
    const id = (body as { request_id?: unknown } | null)?.request_id;
    if (typeof id === "string" && id !== "") return { kind: "submitted", requestId: id };
    return { kind: "unknown", reason: `fal answered HTTP ${response.status} without a request id`, status: response.status };
  }
  if (response.status >= 400 && response.status < 500 && !NOT_A_REFUSAL.has(response.status)) {
    return { kind: "rejected", status: response.status, body };
  }
  return { kind: "unknown", reason: `fal answered HTTP ${response.status}`, status: response.status };
}
