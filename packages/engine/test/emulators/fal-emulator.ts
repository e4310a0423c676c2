import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local stand-in for fal.ai's queue and storage REST protocol (trainers.md §4.3-4.6), so the
 * real @fal-ai/client code runs against it. Serves on 127.0.0.1 only. The client's hosts are
 * hard-coded, so tests pass `emulator.fetch`, which rewrites https://queue.fal.run and
 * https://rest.fal.ai to this server (upload PUTs go to the upload_url we hand out, already local).
 *
 * A job advances one stage per status poll: IN_QUEUE (position 1, 0) -> IN_PROGRESS with a log
 * line per poll -> COMPLETED. Faults: a 5xx storm (answered before any job exists), a connection
 * dropped before or after the job exists, a 5xx/429 answered after the job exists, a submit held
 * unanswered (a loraspec killed during its submit), a job cancelled while running. The Platform
 * API's request list (GET /v1/models/requests/by-endpoint) is served for the lost-submit lookup.
 */
export interface EmulatedJob {
  id: string;
  endpoint: string;
  input: Record<string, unknown>;
  polls: number;
  cancelled: boolean;
  authorization: string | undefined;
  /** When the submit reached the queue (the request list's sent_at). */
  sentAt: string;
}

export interface FalEmulator {
  url: string;
  fetch: typeof fetch;
  jobs: EmulatedJob[];
  uploads: Map<string, Buffer>;
  /** Every Authorization header the server saw. */
  authorizations: string[];
  /** The object-lifecycle header of each upload initiate (what the client asked for). */
  uploadLifecycles: (string | undefined)[];
  /** The next `count` requests whose path matches answer `status` (a 5xx storm). */
  failNext(params: { count: number; status?: number; match?: RegExp }): void;
  /** The next submit creates its job, then the connection drops before the response is sent. */
  loseNextSubmitResponse(): void;
  /** The next submit creates its job, then answers this status (a gateway 504 after the queue took it). */
  failNextSubmitAfterCreate(status: number): void;
  /** The next request whose path matches loses its connection before anything is done. */
  dropNext(match?: RegExp): void;
  /** The next submit creates its job and never answers (until close): kill the submitter meanwhile. */
  holdNextSubmit(): void;
  /** Whether the request list shows each request's json_input (fal's payload storage; default true). */
  listShowsInputs: boolean;
  /** Requests to the Platform API's request list. */
  lookups: number;
  /** How many IN_PROGRESS polls a job takes (default 3). */
  progressPolls: number;
  /** Bytes of the LoRA a completed job returns (default: a tiny valid safetensors file). */
  loraBytes: Buffer;
  /** What the pricing API (GET /v1/models/pricing?endpoint_id=a,b) lists, as fal answers it (default none: the price records decide). */
  prices: Array<{ endpoint_id: string; unit_price: number; unit: string; currency: string }>;
  /** Requests to the pricing API. */
  priceLookups: number;
  close(): Promise<void>;
}

export async function startFalEmulator(): Promise<FalEmulator> {
  const jobs: EmulatedJob[] = [];
  const uploads = new Map<string, Buffer>();
  const authorizations: string[] = [];
  const uploadLifecycles: (string | undefined)[] = [];
  const faults: { count: number; status: number; match: RegExp }[] = [];
  let loseSubmit = 0;
  const afterCreate: number[] = [];
  const drops: RegExp[] = [];
  let holdSubmit = 0;
  let nextId = 1;
  let base = "";

  const emulator: FalEmulator = {
    url: "",
    fetch: undefined as unknown as typeof fetch,
    jobs,
    uploads,
    authorizations,
    uploadLifecycles,
    progressPolls: 3,
    loraBytes: tinyLora(),
    failNext({ count, status = 503, match = /.*/ }) {
      faults.push({ count, status, match });
    },
    loseNextSubmitResponse() {
      loseSubmit++;
    },
    failNextSubmitAfterCreate(status) {
      afterCreate.push(status);
    },
    dropNext(match = /.*/) {
      drops.push(match);
    },
    holdNextSubmit() {
      holdSubmit++;
    },
    listShowsInputs: true,
    lookups: 0,
    prices: [],
    priceLookups: 0,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", base);
    const body = await readBody(req);
    const auth = req.headers.authorization;
    if (auth) authorizations.push(auth);
    const drop = drops.findIndex((m) => m.test(url.pathname));
    if (drop >= 0) {
      drops.splice(drop, 1);
      req.socket.destroy();
      return;
    }
    const fault = faults.find((f) => f.count > 0 && f.match.test(url.pathname));
    if (fault) {
      fault.count--;
      return json(res, fault.status, { detail: "emulated server error" });
    }
    const parts = url.pathname.split("/").filter(Boolean);
    // Storage: initiate an upload, receive the bytes, serve the file.
    if (parts[0] === "rest" && url.pathname.endsWith("/storage/upload/initiate") && req.method === "POST") {
      if (!auth?.startsWith("Key ")) return json(res, 401, { detail: "Unauthorized" });
      const lifecycle = req.headers["x-fal-object-lifecycle-preference"] ?? req.headers["x-fal-object-lifecycle"];
      uploadLifecycles.push(Array.isArray(lifecycle) ? lifecycle[0] : lifecycle);
      const { file_name } = JSON.parse(body.toString() || "{}") as { file_name?: string };
      const id = `u${nextId++}-${file_name ?? "file"}`;
      return json(res, 200, { upload_url: `${base}/upload/${id}`, file_url: `${base}/files/${id}` });
    }
    if (parts[0] === "upload" && req.method === "PUT") {
      uploads.set(parts[1]!, body);
      return json(res, 200, {});
    }
    if (parts[0] === "files" && req.method === "GET") {
      const bytes = uploads.get(parts[1]!);
      if (!bytes) return json(res, 404, { detail: "not found" });
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length });
      return res.end(bytes);
    }
    if (parts[0] === "api" && url.pathname === "/api/v1/models/pricing" && req.method === "GET") {
      if (!auth?.startsWith("Key ")) return json(res, 401, { detail: "Unauthorized" });
      emulator.priceLookups++;
      const ids = (url.searchParams.get("endpoint_id") ?? "").split(",");
      return json(res, 200, { prices: emulator.prices.filter((p) => ids.includes(p.endpoint_id)) });
    }
    if (parts[0] === "api" && url.pathname === "/api/v1/models/requests/by-endpoint" && req.method === "GET") {
      if (!auth?.startsWith("Key ")) return json(res, 401, { detail: "Unauthorized" });
      emulator.lookups++;
      const endpoint = url.searchParams.get("endpoint_id");
      const start = Date.parse(url.searchParams.get("start") ?? new Date(Date.now() - 86_400_000).toISOString());
      const items = jobs
        .filter((j) => j.endpoint === endpoint && Date.parse(j.sentAt) >= start)
        .reverse()
        .map((j) => ({ request_id: j.id, endpoint_id: j.endpoint, sent_at: j.sentAt, ...(emulator.listShowsInputs ? { json_input: j.input } : {}) }));
      return json(res, 200, { items, next_cursor: null, has_more: false });
    }
    if (parts[0] !== "queue") return json(res, 404, { detail: `no route ${url.pathname}` });
    if (!auth?.startsWith("Key ")) return json(res, 401, { detail: "Unauthorized" });
    const path = parts.slice(1);
    const reqIndex = path.indexOf("requests");
    if (reqIndex === -1 && req.method === "POST") {
      // Submit: /{owner}/{app}[/{subpath}]
      const endpoint = path.join("/");
      const app = path.slice(0, 2).join("/");
      const id = `req-${nextId++}`;
      jobs.push({ id, endpoint, input: JSON.parse(body.toString() || "{}"), polls: 0, cancelled: false, authorization: auth, sentAt: new Date().toISOString() });
      if (holdSubmit > 0) {
        holdSubmit--;
        return; // no answer: the submitter waits until it is killed (close() drops the socket)
      }
      const failStatus = afterCreate.shift();
      if (failStatus !== undefined) return json(res, failStatus, { detail: "emulated gateway error after the job was queued" });
      if (loseSubmit > 0) {
        loseSubmit--;
        req.socket.destroy();
        return;
      }
      const at = `${base}/queue/${app}/requests/${id}`;
      return json(res, 200, { request_id: id, response_url: at, status_url: `${at}/status`, cancel_url: `${at}/cancel`, queue_position: 1 });
    }
    const job = jobs.find((j) => j.id === path[reqIndex + 1]);
    if (!job) return json(res, 404, { detail: "Request not found" });
    const action = path[reqIndex + 2];
    const at = `${base}/queue/${path.slice(0, reqIndex).join("/")}/requests/${job.id}`;
    if (action === "status" && req.method === "GET") {
      job.polls++;
      const withLogs = url.searchParams.get("logs") === "1";
      const done = job.cancelled || job.polls > 2 + emulator.progressPolls;
      if (job.polls <= 2 && !job.cancelled) {
        return json(res, 202, { status: "IN_QUEUE", queue_position: 2 - job.polls, response_url: at, status_url: `${at}/status` });
      }
      const steps = Math.min(job.polls - 2, emulator.progressPolls);
      const total = emulator.progressPolls;
      const logs = withLogs
        ? Array.from({ length: steps }, (_, i) => ({
            message: `Training: step ${i + 1}/${total} loss=${(0.3 - i * 0.01).toFixed(4)}`,
            level: "INFO",
            source: "user",
            timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
          }))
        : [];
      if (!done) return json(res, 202, { status: "IN_PROGRESS", logs, response_url: at, status_url: `${at}/status` });
      return json(res, 200, { status: "COMPLETED", logs, metrics: { inference_time: 12.5 }, response_url: at, status_url: `${at}/status` });
    }
    if (action === "cancel" && req.method === "PUT") {
      if (job.polls > 2 + emulator.progressPolls) return json(res, 400, { status: "ALREADY_COMPLETED" });
      job.cancelled = true;
      return json(res, 202, { status: "CANCELLATION_REQUESTED" });
    }
    if (action === undefined && req.method === "GET") {
      // Our assumption for a cancelled job (fal's docs leave it to the app): the result is an error.
      if (job.cancelled) return json(res, 400, { detail: "Request was cancelled" });
      if (job.polls <= 2 + emulator.progressPolls) return json(res, 400, { detail: "Request is still in progress" });
      const loraId = `out-${job.id}-pytorch_lora_weights.safetensors`;
      uploads.set(loraId, emulator.loraBytes);
      const configId = `out-${job.id}-config.json`;
      uploads.set(configId, Buffer.from(JSON.stringify({ endpoint: job.endpoint, steps: job.input.steps ?? null })));
      return json(
        res,
        200,
        {
          diffusers_lora_file: { url: `${base}/files/${loraId}`, content_type: "application/octet-stream", file_name: "pytorch_lora_weights.safetensors", file_size: emulator.loraBytes.length },
          config_file: { url: `${base}/files/${configId}`, content_type: "application/json", file_name: "config.json" },
        },
        { "x-fal-request-id": job.id },
      );
    }
    return json(res, 404, { detail: `no route ${req.method} ${url.pathname}` });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error) => json(res, 500, { detail: String(error) }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  emulator.url = base;
  emulator.fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
    const raw = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const rewritten = raw
      .replace(/^https:\/\/queue\.fal\.run\//, `${base}/queue/`)
      .replace(/^https:\/\/rest\.fal\.ai\//, `${base}/rest/`)
      .replace(/^https:\/\/rest\.alpha\.fal\.ai\//, `${base}/rest/`)
      .replace(/^https:\/\/api\.fal\.ai\//, `${base}/api/`);
    if (/^https?:\/\//.test(rewritten) && !rewritten.startsWith(base)) {
      throw new Error(`the fal emulator refuses a request to ${rewritten}: tests never leave 127.0.0.1`);
    }
    return fetch(rewritten, init);
  }) as typeof fetch;
  return emulator;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A tiny valid LoRA safetensors file (two F32 tensors with diffusers/peft key names). */
export function tinyLora(): Buffer {
  const header = {
    __metadata__: { format: "pt" },
    "transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": { dtype: "F32", shape: [1, 2], data_offsets: [0, 8] },
    "transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight": { dtype: "F32", shape: [2, 1], data_offsets: [8, 16] },
  };
  let text = JSON.stringify(header);
  text += " ".repeat((8 - (text.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([length, Buffer.from(text), Buffer.alloc(16)]);
}
