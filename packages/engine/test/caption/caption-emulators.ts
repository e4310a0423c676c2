import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import sharp from "sharp";

/**
 * Local stand-ins (127.0.0.1 only) for the two HTTP captioning protocols, so the real client
 * code runs against them:
 * - OpenAI-compatible `POST /v1/chat/completions` with a [text, image_url data URL] user message;
 * - fal's queue REST protocol (trainers.md §4.3) for a captioning endpoint: submit, status, result.
 * Both check the request shape, decode the image (it must be a real image), answer with a
 * caption naming the image's mean colour, and can fail every Nth request with a 503.
 */
export interface CaptionEmulator {
  url: string;
  /** fetch that sends https://queue.fal.run/... and https://rest.fal.ai/... here instead. */
  falFetch: typeof fetch;
  requests: Array<{ path: string; method: string; authorization?: string; body?: unknown }>;
  /** 0 = never; 3 = every third request answers 503. */
  failEvery: number;
  /** Answer every request with this status instead (auth tests). */
  forceStatus?: number;
  /** What the model says (before loraspec puts the trigger first); {colour} is filled in. */
  answer: string;
  close(): Promise<void>;
}

export async function startCaptionEmulator(): Promise<CaptionEmulator> {
  let count = 0;
  let nextId = 1;
  const jobs = new Map<string, { polls: number; result: Record<string, unknown> }>();
  const emulator: CaptionEmulator = {
    url: "",
    falFetch: undefined as unknown as typeof fetch,
    requests: [],
    failEvery: 0,
    answer: "A photo of a man standing in a park, soft daylight, {colour} tones.",
    close: async () => {},
  };

  const describe = async (dataUrl: unknown): Promise<string> => {
    const match = typeof dataUrl === "string" ? /^data:image\/(jpeg|png|webp);base64,(.+)$/.exec(dataUrl) : null;
    if (!match) throw new HttpError(422, "image_url must be a data URL of an image");
    const stats = await sharp(Buffer.from(match[2]!, "base64")).stats();
    const [r, g, b] = stats.channels.map((c) => c.mean);
    const colour = r! > g! && r! > b! ? "red" : g! > b! ? "green" : "blue";
    return emulator.answer.replaceAll("{colour}", colour);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, body: unknown) => {
    count++;
    emulator.requests.push({ path: req.url ?? "", method: req.method ?? "", authorization: req.headers.authorization, body });
    if (emulator.forceStatus) return send(res, emulator.forceStatus, { error: { message: "forced" } });
    if (emulator.failEvery > 0 && count % emulator.failEvery === 0) return send(res, 503, { error: { message: "emulated overload" } });
    const url = new URL(req.url ?? "/", "http://x");
    // OpenAI-compatible chat completions.
    if (req.method === "POST" && url.pathname === "/v1/chat/completions") {
      const b = body as { model?: string; messages?: Array<{ role: string; content: Array<{ type: string; text?: string; image_url?: { url: string } }> }> };
      const parts = b.messages?.[0]?.content;
      if (!b.model || !Array.isArray(parts)) throw new HttpError(400, "model and messages[0].content[] are required");
      const text = parts.find((p) => p.type === "text")?.text;
      const image = parts.find((p) => p.type === "image_url")?.image_url?.url;
      if (!text) throw new HttpError(400, "a text part with the prompt is required");
      const caption = await describe(image);
      return send(res, 200, { id: `chatcmpl-${count}`, object: "chat.completion", model: b.model, choices: [{ index: 0, message: { role: "assistant", content: caption }, finish_reason: "stop" }] });
    }
    // fal queue: POST /{owner}/{app}[/{path}] submits; GET .../requests/{id}/status; GET .../requests/{id}.
    const status = /^\/([^/]+\/[^/]+)\/requests\/([^/]+)\/status$/.exec(url.pathname);
    const result = /^\/([^/]+\/[^/]+)\/requests\/([^/]+)$/.exec(url.pathname);
    if (req.method === "GET" && status) {
      const job = jobs.get(status[2]!);
      if (!job) return send(res, 404, { detail: "no such request" });
      job.polls++;
      const base = `${emulator.url}/${status[1]}/requests/${status[2]}`;
      return job.polls < 2
        ? send(res, 202, { status: "IN_PROGRESS", request_id: status[2], response_url: base, status_url: `${base}/status`, logs: [] })
        : send(res, 200, { status: "COMPLETED", request_id: status[2], response_url: base, status_url: `${base}/status`, logs: [], metrics: { inference_time: 0.1 } });
    }
    if (req.method === "GET" && result) {
      const job = jobs.get(result[2]!);
      return job ? send(res, 200, job.result, { "x-fal-request-id": result[2]! }) : send(res, 404, { detail: "no such request" });
    }
    if (req.method === "POST") {
      if (!req.headers.authorization?.startsWith("Key ")) return send(res, 401, { detail: "missing Key authorization" });
      const input = body as { image_url?: string; prompt?: string };
      const caption = await describe(input.image_url);
      const id = `req-${nextId++}`;
      const [owner, app] = url.pathname.slice(1).split("/");
      const endpoint = url.pathname.slice(1);
      jobs.set(id, { polls: 0, result: endpoint.includes("florence-2") ? { results: caption } : { output: caption } });
      const base = `${emulator.url}/${owner}/${app}/requests/${id}`;
      return send(res, 200, { request_id: id, response_url: base, status_url: `${base}/status`, cancel_url: `${base}/cancel`, queue_position: 0 });
    }
    return send(res, 404, { detail: "not found" });
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      let body: unknown;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        return send(res, 400, { error: "body is not JSON" });
      }
      handle(req, res, body).catch((error: unknown) => send(res, error instanceof HttpError ? error.status : 500, { error: String((error as Error).message) }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  emulator.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  emulator.falFetch = ((input: string | URL | Request, init?: RequestInit) => {
    const target = String(input instanceof Request ? input.url : input).replace(/^https:\/\/(queue\.fal\.run|rest\.fal\.ai|fal\.run)/, emulator.url);
    return fetch(target, init);
  }) as typeof fetch;
  emulator.close = () => new Promise<void>((r) => server.close(() => r()));
  return emulator;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}
