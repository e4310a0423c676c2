import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { LoraspecError } from "@loraspec/core/errors.js";
import { createApp } from "@loraspec/engine/server/create-app.js";
import type { RunSummary, RunsService } from "@loraspec/engine/server/deps.js";

const TOKEN = "test-token-0123456789abcdef";
/** app.request() sends no Host header (the network layer adds it); the server requires one. */
const HOST = { Host: "127.0.0.1:4747" };
const auth = { ...HOST, Authorization: `Bearer ${TOKEN}` };
const json = { ...auth, "Content-Type": "application/json" };

let root: string;
let project: string;
let outside: string;

const CONTRACT = `version: 1
name: demo
base: { model: sdxl }
trainer: { name: diffusers }
target: character
dataset: { path: ./dataset, resolution: 64 }
trigger: { word: txcl }
`;

async function png(size: number, color: { r: number; g: number; b: number }): Promise<Buffer> {
  return sharp({ create: { width: size, height: size, channels: 3, background: color } }).png().toBuffer();
}

/** A fake supervisor: runs are folders with an events.jsonl we append to from the test. */
function fakeRuns(dir: string): RunsService & { states: Map<string, string> } {
  const states = new Map<string, string>();
  const summary = (id: string): RunSummary => {
    const state = states.get(id);
    if (!state) throw new LoraspecError("E_RUN_NOT_FOUND", `No run ${id}.`);
    return { id, state, runDir: join(dir, ".loraspec", "runs", id) };
  };
  return {
    states,
    list: () => [...states.keys()].map(summary),
    get: summary,
    start: async () => {
      const id = `run${states.size + 1}`;
      await mkdir(join(dir, ".loraspec", "runs", id), { recursive: true });
      states.set(id, "running");
      return { id };
    },
    stop: async (id) => {
      summary(id);
      states.set(id, "cancelled");
    },
    resume: async (id) => {
      states.set(id, "running");
      return { id };
    },
  };
}

const parseContract = ({ text, file }: { text: string; file: string }) => {
  const doc = parseYaml(text) as { name?: unknown };
  if (typeof doc?.name !== "string") throw new LoraspecError("E_CONTRACT_INVALID", "name is required", { file, field: "name" });
  return doc;
};

let runsService: ReturnType<typeof fakeRuns>;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-server-"));
  project = join(root, "project");
  outside = join(root, "outside");
  await mkdir(join(project, "dataset"), { recursive: true });
  await mkdir(outside, { recursive: true });
  await writeFile(join(outside, "secret.txt"), "do not read");
  await writeFile(join(project, "lora.yaml"), CONTRACT);
  await writeFile(join(project, "dataset", "a.png"), await png(64, { r: 200, g: 10, b: 10 }));
  await writeFile(join(project, "dataset", "b.png"), await png(32, { r: 10, g: 200, b: 10 }));
  await writeFile(join(project, "dataset", "broken.png"), "not really a png");
  await writeFile(join(project, "dataset", "a.txt"), "txcl, a red square\n");
  await symlink(join(outside, "secret.txt"), join(project, "leak.txt"));
  await symlink(outside, join(project, "leakdir"));
  runsService = fakeRuns(project);
  app = createApp({ projectDir: project, token: TOKEN, parseContract, runs: runsService, pollMs: 20 });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("access token", () => {
  it.each([
    ["GET", "/api/project"],
    ["GET", "/api/contract"],
    ["GET", "/api/dataset"],
    ["GET", "/api/runs"],
    ["GET", "/files/lora.yaml"],
    ["PUT", "/api/captions"],
    ["POST", "/api/runs"],
  ])("%s %s without a token is 401", async (method, path) => {
    const res = await app.request(path, { method, headers: HOST });
    expect(res.status).toBe(401);
    expect((await res.json()).error.code).toBe("E_UNAUTHORIZED");
  });

  it("the page itself without a token is a 401 page that says how to get in", async () => {
    const res = await app.request("/", { headers: { ...HOST, Accept: "text/html" } });
    expect(res.status).toBe(401);
    expect(await res.text()).toContain("?token=");
  });

  it.each([
    ["wrong bearer", { Authorization: "Bearer nope" }, "/api/project"],
    ["wrong cookie", { Cookie: "loraspec_token_4747=nope" }, "/api/project"],
    ["the right token in another port's cookie", { Cookie: `loraspec_token_4748=${TOKEN}` }, "/api/project"],
    ["token of another length", { Authorization: `Bearer ${TOKEN}x` }, "/api/project"],
  ])("%s is 401", async (_name, headers, path) => {
    expect((await app.request(path, { headers: { ...HOST, ...headers } })).status).toBe(401);
  });

  it("accepts ?token= once and sets an HttpOnly SameSite cookie that works afterwards", async () => {
    const first = await app.request(`/api/project?token=${TOKEN}`, { headers: HOST });
    expect(first.status).toBe(200);
    const cookie = first.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    // Cookies ignore ports: the name carries this server's, so a second `loraspec ui` has its own.
    expect(cookie).toMatch(/^loraspec_token_4747=/);
    const second = await app.request("/api/project", { headers: { ...HOST, Cookie: cookie.split(";")[0]! } });
    expect(second.status).toBe(200);
    const otherPort = await app.request("/api/project", { headers: { Host: "127.0.0.1:4748", Cookie: cookie.split(";")[0]! } });
    expect(otherPort.status).toBe(401);
  });

  it("refuses a changing request from another origin (403)", async () => {
    const res = await app.request("/api/runs", { method: "POST", headers: { ...auth, Origin: "http://evil.example", Host: "127.0.0.1:4000" } });
    expect(res.status).toBe(403);
  });

  it("refuses a Host it does not serve when bound to loopback (DNS rebinding)", async () => {
    const guarded = createApp({ projectDir: project, token: TOKEN, allowedHosts: ["127.0.0.1", "localhost"] });
    expect((await guarded.request("/api/project", { headers: { ...auth, Host: "rebind.example:4000" } })).status).toBe(403);
    expect((await guarded.request("/api/project", { headers: { ...auth, Host: "127.0.0.1:4000" } })).status).toBe(200);
  });
});

describe("files outside the project are refused with 403", () => {
  it.each([
    ["dot-dot", "/files/..%2Foutside%2Fsecret.txt"],
    ["encoded dot-dot deeper", "/files/dataset%2F..%2F..%2Foutside%2Fsecret.txt"],
    ["absolute POSIX", "/files/%2Fetc%2Fpasswd"],
    ["Windows drive", "/files/C%3A%5CWindows%5Cwin.ini"],
    ["UNC", "/files/%5C%5Cserver%5Cshare%5Cx"],
    ["backslash dot-dot", "/files/dataset%5C..%5C..%5Coutside%5Csecret.txt"],
    ["symlinked file", "/files/leak.txt"],
    ["symlinked folder", "/files/leakdir/secret.txt"],
    ["thumbnail dot-dot", "/api/dataset/thumb?path=..%2F..%2Foutside%2Fsecret.txt"],
    ["crop absolute", "/api/dataset/crop?path=%2Fetc%2Fpasswd"],
  ])("%s", async (_name, path) => {
    const res = await app.request(path, { headers: auth });
    expect(res.status).toBe(403);
    const body = await res.json();
    expect(body.error.code).toBe("E_PATH_OUTSIDE_PROJECT");
    expect(JSON.stringify(body)).not.toContain("do not read");
  });

  it.each([
    ["inspect absolute", "/api/lora/inspect", { path: "/etc/passwd" }],
    ["convert out escapes", "/api/lora/convert", { path: "a.safetensors", to: "kohya", out: "../x.safetensors" }],
    ["merge input escapes", "/api/lora/merge", { inputs: [{ path: "../outside/x.safetensors", weight: 1 }], out: "m.safetensors" }],
  ])("LoRA tool path: %s", async (_name, path, body) => {
    const withLora = createApp({
      projectDir: project,
      token: TOKEN,
      lora: { inspect: async () => ({}), convert: async () => ({}), merge: async () => ({}) },
    });
    const res = await withLora.request(path, { method: "POST", headers: json, body: JSON.stringify(body) });
    expect(res.status).toBe(403);
  });

  it("merge passes weights, method and the output through, and refuses an unknown method", async () => {
    const calls: unknown[] = [];
    const withLora = createApp({
      projectDir: project,
      token: TOKEN,
      lora: { inspect: async () => ({}), convert: async () => ({}), merge: async (p) => (calls.push(p), { ok: true }) },
    });
    const body = { inputs: [{ path: "a.safetensors", weight: 0.5 }, { path: "b.safetensors", weight: 0.3 }], out: "m.safetensors", method: "ties" };
    const res = await withLora.request("/api/lora/merge", { method: "POST", headers: json, body: JSON.stringify(body) });
    expect(res.status).toBe(200);
    expect(calls).toEqual([
      { inputs: [{ path: join(project, "a.safetensors"), weight: 0.5 }, { path: join(project, "b.safetensors"), weight: 0.3 }], out: join(project, "m.safetensors"), method: "ties", to: undefined },
    ]);
    const bad = await withLora.request("/api/lora/merge", { method: "POST", headers: json, body: JSON.stringify({ ...body, method: "rm -rf" }) });
    expect(bad.status).toBe(400);
  });

  it("a project opened through a symlinked path still serves its own files", async () => {
    const link = join(root, "project-link");
    await symlink(project, link);
    const viaLink = createApp({ projectDir: link, token: TOKEN });
    expect((await viaLink.request("/files/dataset/a.txt", { headers: auth })).status).toBe(200);
    expect((await viaLink.request("/api/dataset/thumb?path=a.png", { headers: auth })).status).toBe(200);
    expect((await viaLink.request("/files/leak.txt", { headers: auth })).status).toBe(403);
  });

  it("serves a file inside the project", async () => {
    const res = await app.request("/files/dataset/a.txt", { headers: auth });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("txcl");
  });
});

describe("request bodies", () => {
  it("an oversized upload is 413 and writes nothing", async () => {
    const form = new FormData();
    form.append("file", new File([new Uint8Array(65 * 1024 * 1024)], "huge.png", { type: "image/png" }));
    const res = await app.request("/api/dataset/upload", { method: "POST", headers: auth, body: form });
    expect(res.status).toBe(413);
    expect(await readdir(join(project, "dataset"))).not.toContain("huge.png");
  });

  it("an oversized JSON body is 413", async () => {
    const res = await app.request("/api/contract", { method: "PUT", headers: json, body: JSON.stringify({ yaml: "x".repeat(2 * 1024 * 1024) }) });
    expect(res.status).toBe(413);
  });

  it.each([
    ["text named .png", "fake.png", "image/png", new TextEncoder().encode("hello, not an image")],
    ["script", "x.html", "text/html", new TextEncoder().encode("<script>alert(1)</script>")],
    ["pickle", "shard_0.pkl", "application/octet-stream", new Uint8Array([0x80, 0x04, 0x95])],
  ])("an upload of the wrong type is 415: %s", async (_name, name, type, data) => {
    const form = new FormData();
    form.append("file", new File([data], name, { type }));
    const res = await app.request("/api/dataset/upload", { method: "POST", headers: auth, body: form });
    expect(res.status).toBe(415);
    expect(await readdir(join(project, "dataset"))).not.toContain(name);
  });

  it("a JSON route refuses another content type with 415", async () => {
    const res = await app.request("/api/captions", { method: "PUT", headers: { ...auth, "Content-Type": "text/plain" }, body: "{}" });
    expect(res.status).toBe(415);
  });

  it("a real PNG upload lands in the dataset and never replaces a file (409)", async () => {
    const upload = async () => {
      const form = new FormData();
      form.append("file", new File([new Uint8Array(await png(40, { r: 1, g: 2, b: 3 }))], "new.png", { type: "image/png" }));
      return app.request("/api/dataset/upload", { method: "POST", headers: auth, body: form });
    };
    expect((await upload()).status).toBe(200);
    expect(await readdir(join(project, "dataset"))).toContain("new.png");
    expect((await upload()).status).toBe(409);
  });
});

describe("contract and captions", () => {
  it("returns the YAML and the parsed contract", async () => {
    const body = await (await app.request("/api/contract", { headers: auth })).json();
    expect(body.yaml).toBe(CONTRACT);
    expect(body.contract.name).toBe("demo");
  });

  it("does not write a contract that fails to parse (422) and writes a good one", async () => {
    const bad = await app.request("/api/contract", { method: "PUT", headers: json, body: JSON.stringify({ yaml: "version: 1\n", base: CONTRACT }) });
    expect(bad.status).toBe(422);
    expect(await readFile(join(project, "lora.yaml"), "utf8")).toBe(CONTRACT);
    const good = CONTRACT.replace("name: demo", "name: demo2");
    const ok = await app.request("/api/contract", { method: "PUT", headers: json, body: JSON.stringify({ yaml: good, base: CONTRACT }) });
    expect(ok.status).toBe(200);
    expect(await readFile(join(project, "lora.yaml"), "utf8")).toBe(good);
    await writeFile(join(project, "lora.yaml"), CONTRACT);
  });

  it("lists the dataset with captions and problems", async () => {
    const body = await (await app.request("/api/dataset", { headers: auth })).json();
    const byPath = Object.fromEntries(body.images.map((i: { path: string }) => [i.path, i]));
    expect(body.trigger).toBe("txcl");
    expect(byPath["a.png"].caption).toBe("txcl, a red square\n");
    expect(byPath["a.png"].problems).toEqual([]);
    expect(byPath["b.png"].problems.map((p: { code: string }) => p.code).sort()).toEqual(["no-caption", "too-small"]);
    expect(byPath["broken.png"].problems.map((p: { code: string }) => p.code)).toContain("unreadable");
  });

  it("thumbnails and crops are small WebP images", async () => {
    for (const path of ["/api/dataset/thumb?path=a.png", "/api/dataset/crop?path=a.png&mode=attention"]) {
      const res = await app.request(path, { headers: auth });
      expect(res.status).toBe(200);
      const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
      expect(meta.format).toBe("webp");
    }
  });

  it("writes captions (several at once) to the sidecar files", async () => {
    const res = await app.request("/api/captions", {
      method: "PUT",
      headers: json,
      body: JSON.stringify({ items: [{ image: "a.png", text: "txcl, edited", base: "txcl, a red square\n" }, { image: "b.png", text: "txcl, green", base: null }] }),
    });
    expect(res.status).toBe(200);
    expect(await readFile(join(project, "dataset", "a.txt"), "utf8")).toBe("txcl, edited\n");
    expect(await readFile(join(project, "dataset", "b.txt"), "utf8")).toBe("txcl, green\n");
  });

  it("pairs and reads captions as check, prep and train do (caption-sidecar.ts): IMG.TXT captions IMG.png, a BOM dropped, Latin-1 a problem; a save writes the paired file", async () => {
    await writeFile(join(project, "dataset", "up.png"), await png(64, { r: 10, g: 10, b: 200 }));
    await writeFile(join(project, "dataset", "up.TXT"), "\ufefftxcl, upper\n");
    await writeFile(join(project, "dataset", "latin.png"), await png(64, { r: 10, g: 200, b: 10 }));
    await writeFile(join(project, "dataset", "latin.txt"), Buffer.from("txcl, caf\xe9\n", "latin1"));
    try {
      const body = await (await app.request("/api/dataset", { headers: auth })).json();
      const byPath = Object.fromEntries(body.images.map((i: { path: string }) => [i.path, i]));
      expect([byPath["up.png"].caption, byPath["up.png"].captionFile]).toEqual(["txcl, upper\n", "up.TXT"]);
      expect(byPath["latin.png"].caption).toBeNull();
      expect(byPath["latin.png"].problems.map((p: { code: string }) => p.code)).toContain("caption-not-utf8");
      const res = await app.request("/api/captions", { method: "PUT", headers: json, body: JSON.stringify({ items: [{ image: "up.png", text: "txcl, edited upper", base: "txcl, upper\n" }] }) });
      expect(res.status).toBe(200);
      expect(await readFile(join(project, "dataset", "up.TXT"), "utf8")).toBe("txcl, edited upper\n");
      expect((await readdir(join(project, "dataset"))).filter((f) => f.startsWith("up."))).toEqual(["up.TXT", "up.png"]);
    } finally {
      for (const f of ["up.png", "up.TXT", "latin.png", "latin.txt"]) await rm(join(project, "dataset", f), { force: true });
    }
  });

  it("refuses a caption for an image not in the dataset and writes none of the batch", async () => {
    const res = await app.request("/api/captions", {
      method: "PUT",
      headers: json,
      body: JSON.stringify({ items: [{ image: "a.png", text: "changed", base: "txcl, edited\n" }, { image: "../lora.png", text: "x", base: null }] }),
    });
    expect(res.status).toBe(404);
    expect(await readFile(join(project, "dataset", "a.txt"), "utf8")).toBe("txcl, edited\n");
  });
});

describe("the web page", () => {
  it("serves index.html for page routes with a strict CSP, and assets by type, never files outside dist", async () => {
    const dist = join(root, "dist");
    await mkdir(join(dist, "assets"), { recursive: true });
    await writeFile(join(dist, "index.html"), "<!doctype html><div id=root></div>");
    await writeFile(join(dist, "assets", "app.js"), "console.log(1)");
    const web = createApp({ projectDir: project, token: TOKEN, webDist: dist });
    const page = await web.request("/", { headers: auth });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const js = await web.request("/assets/app.js", { headers: auth });
    expect(js.headers.get("content-type")).toMatch(/javascript/);
    expect((await web.request("/api/no-such-route", { headers: auth })).status).toBe(404);
    const escape = await web.request("/assets/..%2F..%2Foutside%2Fsecret.txt", { headers: auth });
    expect(await escape.text()).not.toContain("do not read");
  });
});

describe("a new project from an example", () => {
  it("copies the example's contract and dataset, never over an existing contract", async () => {
    const examples = join(root, "examples");
    await mkdir(join(examples, "demo", "dataset"), { recursive: true });
    await writeFile(join(examples, "demo", "lora.yaml"), CONTRACT);
    await writeFile(join(examples, "demo", "dataset", "x.png"), await png(16, { r: 9, g: 9, b: 9 }));
    await writeFile(join(examples, "loose.yaml"), CONTRACT);
    await writeFile(join(examples, "notes.md"), "not an example");
    const fresh = join(root, "fresh");
    await mkdir(fresh);
    const a = createApp({ projectDir: fresh, token: TOKEN, examplesDir: examples });
    const info = await (await a.request("/api/project", { headers: auth })).json();
    expect(info.hasContract).toBe(false);
    expect(info.examples).toEqual(["demo", "loose.yaml"]);
    const create = (example: string) => a.request("/api/project/from-example", { method: "POST", headers: json, body: JSON.stringify({ example }) });
    expect((await create("../demo")).status).toBe(400);
    expect((await create("notes.md")).status).toBe(400);
    expect((await create("demo")).status).toBe(200);
    expect(await readFile(join(fresh, "lora.yaml"), "utf8")).toBe(CONTRACT);
    expect(await readdir(join(fresh, "dataset"))).toEqual(["x.png"]);
    expect((await create("loose.yaml")).status).toBe(409);
  });
});

describe("auto-caption", () => {
  it("returns suggestions for the selected images with the contract's trigger and style, and writes nothing", async () => {
    const calls: unknown[] = [];
    const withCaptioner = createApp({
      projectDir: project,
      token: TOKEN,
      autoCaption: async (p) => {
        calls.push({ images: p.images, trigger: p.trigger, style: p.style, target: p.target });
        return { captions: Object.fromEntries(p.images.map((i) => [i, `${p.trigger}, suggested for ${i}`])), failed: [] };
      },
    });
    const before = await readFile(join(project, "dataset", "a.txt"), "utf8");
    const res = await withCaptioner.request("/api/captions/auto", { method: "POST", headers: json, body: JSON.stringify({ images: ["a.png"] }) });
    expect(res.status).toBe(200);
    expect((await res.json()).captions).toEqual({ "a.png": "txcl, suggested for a.png" });
    expect(calls).toEqual([{ images: ["a.png"], trigger: "txcl", style: "natural", target: "character" }]);
    expect(await readFile(join(project, "dataset", "a.txt"), "utf8")).toBe(before);
  });

  it("refuses an image that is not in the dataset", async () => {
    const withCaptioner = createApp({ projectDir: project, token: TOKEN, autoCaption: async () => ({ captions: {}, failed: [] }) });
    const res = await withCaptioner.request("/api/captions/auto", { method: "POST", headers: json, body: JSON.stringify({ images: ["../lora.yaml"] }) });
    expect(res.status).toBe(404);
  });
});

describe("runs", () => {
  it("streams a run's events over SSE, resumes from Last-Event-ID, and keeps loss history across a resume", async () => {
    const { id } = await (await app.request("/api/runs", { method: "POST", headers: auth })).json();
    const file = join(project, ".loraspec", "runs", id, "events.jsonl");
    const line = (e: unknown) => `${JSON.stringify(e)}\n`;
    await appendFile(file, line({ type: "phase", name: "train" }) + line({ type: "loss", step: 1, loss: 0.9 }) + line({ type: "loss", step: 2, loss: 0.8 }));
    runsService.states.set(id, "interrupted");
    // Resumed from step 1: step 2 is trained again and its new value wins.
    await appendFile(file, line({ type: "loss", step: 2, loss: 0.5 }) + line({ type: "loss", step: 3, loss: 0.4 }) + line({ type: "done" }));
    runsService.states.set(id, "succeeded");

    const res = await app.request(`/api/runs/${id}/events`, { headers: auth });
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const text = await res.text();
    const events = [...text.matchAll(/event: event\ndata: (.*)\nid: (\d+)/g)].map((m) => ({ e: JSON.parse(m[1]!), id: Number(m[2]) }));
    expect(events.map((x) => x.e.type)).toEqual(["phase", "loss", "loss", "loss", "loss", "done"]);
    expect(text).toContain("event: end");

    const third = events[2]!.id;
    const again = await (await app.request(`/api/runs/${id}/events`, { headers: { ...auth, "Last-Event-ID": String(third) } })).text();
    expect([...again.matchAll(/event: event\n/g)].length).toBe(3);

    const loss = await (await app.request(`/api/runs/${id}/loss`, { headers: auth })).json();
    expect(loss.steps).toEqual([1, 2, 3]);
    expect(loss.loss).toEqual([0.9, 0.5, 0.4]);
  });

  it("lists a run's samples (project-relative, for /files/) and tails its log", async () => {
    const { id } = await (await app.request("/api/runs", { method: "POST", headers: auth })).json();
    const dir = join(project, ".loraspec", "runs", id);
    await appendFile(join(dir, "events.jsonl"), `${JSON.stringify({ type: "sample", step: 4, path: "samples/s4.png", prompt: "txcl", seed: 1 })}\n`);
    await writeFile(join(dir, "run.log"), Array.from({ length: 500 }, (_, i) => `line ${i}`).join("\n") + "\n");
    const samples = await (await app.request(`/api/runs/${id}/samples`, { headers: auth })).json();
    expect(samples.samples).toEqual([{ type: "sample", step: 4, path: `.loraspec/runs/${id}/samples/s4.png`, prompt: "txcl", seed: 1 }]);
    const log = await (await app.request(`/api/runs/${id}/log?lines=3`, { headers: auth })).json();
    expect(log).toEqual({ file: "run.log", lines: ["line 497", "line 498", "line 499"] });
    runsService.states.set(id, "succeeded");
  });

  it("validates a run in the background and streams its events; one validation at a time", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const calls: unknown[] = [];
    const withValidation = createApp({
      projectDir: project,
      token: TOKEN,
      runs: runsService,
      pollMs: 20,
      validation: {
        validate: (p) => ({
          async *[Symbol.asyncIterator]() {
            calls.push({ runId: p.runId, checkpoints: p.checkpoints });
            yield { type: "progress", task: "sample", current: 1, total: 2 } as const;
            await gate;
            yield { type: "done", result: { report: "report.html" } } as const;
          },
        }),
      },
    });
    const { id } = await (await app.request("/api/runs", { method: "POST", headers: auth })).json();
    runsService.states.set(id, "succeeded");
    const start = () => withValidation.request(`/api/runs/${id}/validate`, { method: "POST", headers: json, body: JSON.stringify({ checkpoints: true }) });
    expect((await start()).status).toBe(202);
    expect((await start()).status).toBe(409);
    release();
    const text = await (await withValidation.request(`/api/runs/${id}/validate/events`, { headers: auth })).text();
    expect([...text.matchAll(/event: event\ndata: (.*)\n/g)].map((m) => JSON.parse(m[1]!).type)).toEqual(["progress", "done"]);
    expect(text).toContain("event: end");
    expect(calls).toEqual([{ runId: id, checkpoints: true }]);
  });

  it("a validation that throws leaves its error in the stream", async () => {
    const failing = createApp({
      projectDir: project,
      token: TOKEN,
      runs: runsService,
      pollMs: 20,
      validation: {
        validate: () => ({
          async *[Symbol.asyncIterator]() {
            throw new LoraspecError("E_NO_OUTPUT", "run has no LoRA file");
          },
        }),
      },
    });
    const { id } = await (await app.request("/api/runs", { method: "POST", headers: auth })).json();
    runsService.states.set(id, "failed");
    expect((await failing.request(`/api/runs/${id}/validate`, { method: "POST", headers: auth })).status).toBe(202);
    const text = await (await failing.request(`/api/runs/${id}/validate/events`, { headers: auth })).text();
    expect(text).toContain('"code":"E_NO_OUTPUT"');
  });

  it("an unknown run is 404 with its code", async () => {
    const res = await app.request("/api/runs/nope/loss", { headers: auth });
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe("E_RUN_NOT_FOUND");
  });

  it("a capability not wired answers 501, not a crash", async () => {
    const bare = createApp({ projectDir: project, token: TOKEN });
    expect((await bare.request("/api/runs", { headers: auth })).status).toBe(501);
  });
});

describe("no endpoint runs commands", () => {
  it("the server code neither spawns processes nor fetches URLs", async () => {
    const dir = join(import.meta.dirname, "../../src/server");
    const files = (await readdir(dir, { recursive: true })).filter((f) => String(f).endsWith(".ts"));
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) {
      const src = await readFile(join(dir, String(f)), "utf8");
      expect(src, String(f)).not.toMatch(/child_process|\bexecSync\b|\bspawn\(|\beval\(|new Function\(|\bfetch\(/);
    }
  });
});
