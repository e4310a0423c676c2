import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import sharp from "sharp";

/**
 * Local stand-ins for the documented HTTP APIs the validation samplers talk to, on 127.0.0.1:
 * ComfyUI (POST /prompt, GET /history/{id}, GET /view) and fal.ai's queue + storage REST protocol
 * (trainers.md §4.3-4.5) with a LoRA inference endpoint answering `{images: [{url}]}`.
 * Images are solid colours derived from the request, so tests can tell them apart.
 */
export interface SamplerEmulator {
  url: string;
  /** For @fal-ai/client: rewrites https://queue.fal.run and https://rest.fal.ai to this server. */
  fetch: typeof fetch;
  comfyPrompts: { prompt_id: string; workflow: Record<string, { class_type: string; inputs: Record<string, unknown> }> }[];
  falRequests: { endpoint: string; input: Record<string, unknown>; authorization?: string }[];
  uploads: Map<string, Buffer>;
  /** Answer the next /prompt with node_errors. */
  rejectNextPrompt: boolean;
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

async function png(seed: number, tint: number): Promise<Buffer> {
  const r = (seed * 53) % 256;
  const g = Math.round(tint * 200) % 256;
  return sharp({ create: { width: 16, height: 16, channels: 3, background: { r, g, b: 90 } } }).png().toBuffer();
}

export async function startSamplerEmulator(): Promise<SamplerEmulator> {
  let base = "";
  let next = 1;
  const history = new Map<string, { polls: number; filename: string }>();
  const falJobs = new Map<string, { polls: number; image: string }>();
  const files = new Map<string, Buffer>();
  const emulator: SamplerEmulator = {
    url: "",
    fetch: (input, init) => {
      const raw = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      const rewritten = raw.replace(/^https:\/\/(queue\.fal\.run|rest\.fal\.ai)/, (_m, host: string) => `${base}/${host === "rest.fal.ai" ? "rest" : "queue"}`);
      return fetch(rewritten, init);
    },
    comfyPrompts: [],
    falRequests: [],
    uploads: new Map(),
    rejectNextPrompt: false,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", base);
    const path = url.pathname;
    try {
      // ---- ComfyUI ----
      if (req.method === "POST" && path === "/prompt") {
        const { prompt } = JSON.parse((await body(req)).toString("utf8"));
        if (emulator.rejectNextPrompt) {
          emulator.rejectNextPrompt = false;
          return json(res, 400, { error: { type: "prompt_outputs_failed_validation" }, node_errors: { lora_1: { errors: ["Value not in list: lora_name"] } } });
        }
        const id = `p${next++}`;
        emulator.comfyPrompts.push({ prompt_id: id, workflow: prompt });
        const seed = Number(prompt.sampler?.inputs?.seed ?? 0);
        const tint = Object.values(prompt as Record<string, { class_type: string; inputs: { strength_model?: number } }>)
          .filter((n) => n.class_type === "LoraLoader")
          .reduce((s, n) => s + Number(n.inputs.strength_model ?? 0), 0);
        const filename = `loraspec_${id}_00001_.png`;
        files.set(`output/${filename}`, await png(seed, tint));
        history.set(id, { polls: 0, filename });
        return json(res, 200, { prompt_id: id, number: next, node_errors: {} });
      }
      if (req.method === "GET" && path.startsWith("/history/")) {
        const id = decodeURIComponent(path.slice("/history/".length));
        const h = history.get(id);
        if (!h) return json(res, 200, {});
        h.polls++;
        // First poll: still queued (an empty history), as ComfyUI answers until the prompt ran.
        if (h.polls < 2) return json(res, 200, {});
        return json(res, 200, {
          [id]: { outputs: { save: { images: [{ filename: h.filename, subfolder: "", type: "output" }] } }, status: { status_str: "success", completed: true } },
        });
      }
      if (req.method === "GET" && path === "/view") {
        const key = `${url.searchParams.get("type")}/${url.searchParams.get("filename")}`;
        const file = files.get(key);
        if (!file) return json(res, 404, { error: "not found" });
        res.writeHead(200, { "content-type": "image/png" });
        return res.end(file);
      }
      // ---- fal storage ----
      if (req.method === "POST" && path === "/rest/storage/upload/initiate") {
        const { file_name } = JSON.parse((await body(req)).toString("utf8") || "{}");
        const key = `u${next++}-${file_name ?? "blob"}`;
        return json(res, 200, { upload_url: `${base}/upload/${key}`, file_url: `${base}/files/${key}` });
      }
      if (req.method === "PUT" && path.startsWith("/upload/")) {
        const key = path.slice("/upload/".length);
        emulator.uploads.set(key, await body(req));
        res.writeHead(200);
        return res.end();
      }
      if (req.method === "GET" && path.startsWith("/files/")) {
        const file = files.get(path.slice("/files/".length));
        if (!file) return json(res, 404, { detail: "not found" });
        res.writeHead(200, { "content-type": "image/png" });
        return res.end(file);
      }
      // ---- fal queue ----
      const m = /^\/queue\/([^/]+\/[^/]+)(?:\/(.*))?$/.exec(path);
      if (m) {
        const app = m[1] as string;
        const rest = m[2] ?? "";
        if (!req.headers.authorization?.startsWith("Key ")) return json(res, 401, { detail: "No user found for Key ID and Secret" });
        const r = /^requests\/([^/]+)(\/status)?$/.exec(rest);
        if (req.method === "POST" && !r) {
          const input = JSON.parse((await body(req)).toString("utf8"));
          const endpoint = rest ? `${app}/${rest}` : app;
          emulator.falRequests.push({ endpoint, input, authorization: req.headers.authorization });
          const id = `req-${next++}`;
          const tint = (input.loras as { scale: number }[]).reduce((s, l) => s + l.scale, 0);
          const image = `${id}.png`;
          files.set(image, await png(Number(input.seed ?? 0), tint));
          falJobs.set(id, { polls: 0, image });
          const q = `${base}/queue/${app}/requests/${id}`;
          return json(res, 200, { request_id: id, status_url: `${q}/status`, response_url: q, cancel_url: `${q}/cancel`, queue_position: 0 });
        }
        if (req.method === "GET" && r) {
          const job = falJobs.get(r[1] as string);
          if (!job) return json(res, 404, { detail: "request not found" });
          if (r[2]) {
            job.polls++;
            const status = job.polls < 2 ? "IN_PROGRESS" : "COMPLETED";
            return json(res, status === "COMPLETED" ? 200 : 202, { status, logs: [], response_url: `${base}/queue/${app}/requests/${r[1]}` });
          }
          return json(res, 200, { images: [{ url: `${base}/files/${job.image}`, width: 16, height: 16, content_type: "image/png" }], seed: 0 });
        }
      }
      json(res, 404, { error: `no route ${req.method} ${path}` });
    } catch (error) {
      json(res, 500, { error: String(error) });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  emulator.url = base;
  return emulator;
}
