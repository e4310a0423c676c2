import { mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { LoraspecError } from "@loraspec/core/errors.js";
import { filesKeyFor } from "@loraspec/engine/server/app-context.js";
import { createApp } from "@loraspec/engine/server/create-app.js";
import { fakeRuns } from "./fake-runs.js";
import type { RunsService } from "@loraspec/engine/server/deps.js";
import { readAllEvents, readEventsFrom } from "@loraspec/engine/run/run-files.js";

/**
 * Every route of the page's API against every attack of a class: paths that leave the project
 * (every route that takes a file or folder name), files the server finds itself that link out
 * (captions, run logs, event logs, report summaries), writes from another origin or host or as a
 * CORS-free "simple" request, and writes over a file that changed since the page read it.
 * Expected everywhere: a coded 4xx, no stack, nothing from outside the project, nothing written.
 */
const TOKEN = "attack-token-0123456789abcdef";
const HOST = { Host: "127.0.0.1:4747" };
const auth = { ...HOST, Authorization: `Bearer ${TOKEN}` };
const json = { ...auth, "Content-Type": "application/json" };
const SECRET = "SECRET-OUTSIDE-9f3";
const CONTRACT = "# my notes: keep this comment\nversion: 1\nname: demo\ndataset: { path: ./dataset }\nmy_own_field: { kept: true } # unknown to loraspec\n";

let root: string;
let project: string;
let outside: string;
let app: ReturnType<typeof createApp>;
let started = 0;
const runDirs = new Map<string, string>();

const runs: RunsService = fakeRuns(runDirs, () => started++);

/** Reads whatever it is given: if a path got out of the project, the secret would come back. */
const leakyRead = async (path: string) => ({
  text: await readFile(path, "utf8").catch(() => {
    throw new LoraspecError("E_FILE_NOT_FOUND", "No such file.");
  }),
});

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-attacks-"));
  project = join(root, "project");
  outside = join(root, "outside");
  await mkdir(join(project, "dataset"), { recursive: true });
  await mkdir(outside, { recursive: true });
  await writeFile(join(outside, "secret.txt"), `${SECRET}\n`);
  await writeFile(join(outside, "secret.json"), JSON.stringify({ secret: SECRET }));
  await writeFile(join(outside, "events.jsonl"), `${JSON.stringify({ type: "loss", step: 1, loss: 0.5, message: SECRET })}\n`);
  await writeFile(join(project, "lora.yaml"), CONTRACT);
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 9, g: 9, b: 9 } } }).png().toBuffer();
  for (const name of ["a.png", "b.png", "c.png", "d.png"]) await writeFile(join(project, "dataset", name), png);
  await writeFile(join(project, "dataset", "a.txt"), "txcl, a caption\n");
  await symlink(join(outside, "secret.txt"), join(project, "dataset", "b.txt")); // caption linking out
  await writeFile(join(project, "dataset", "c.txt"), "x".repeat(100 * 1024)); // not a caption
  await symlink(join(outside, "secret.txt"), join(project, "leak.txt"));
  await symlink(outside, join(project, "leakdir"));
  await symlink(join(outside, "secret.txt"), join(project, "leak.safetensors"));
  await symlink("loop2.txt", join(project, "loop.txt")); // a loop: realpath fails with ELOOP
  await symlink("loop.txt", join(project, "loop2.txt"));
  await symlink("loop2.safetensors", join(project, "loop.safetensors"));
  await symlink("loop.safetensors", join(project, "loop2.safetensors"));
  await symlink("d.txt", join(project, "dataset", "d.txt")); // a caption that loops
  await symlink(join(outside, "new.safetensors"), join(project, "dangling.safetensors")); // a write would follow it out
  await writeFile(join(project, "ok.safetensors"), "");
  // A run whose log links out, one whose event log links out, a report whose summary links out.
  for (const id of ["r1", "r2"]) {
    runDirs.set(id, join(project, ".loraspec", "runs", id));
    await mkdir(runDirs.get(id)!, { recursive: true });
  }
  await symlink(join(outside, "secret.txt"), join(runDirs.get("r1")!, "run.log"));
  await symlink(join(outside, "events.jsonl"), join(runDirs.get("r2")!, "events.jsonl"));
  await mkdir(join(project, "val"));
  await writeFile(join(project, "val", "report.html"), "<p>report</p>");
  await symlink(join(outside, "secret.json"), join(project, "val", "validation.json"));
  app = createApp({
    projectDir: project,
    token: TOKEN,
    allowedHosts: ["127.0.0.1", "localhost", "[::1]"], // what startServer sets on loopback
    runs,
    pollMs: 10,
    parseContract: ({ text }) => parseYaml(text),
    lint: async () => [],
    plan: () => ({}),
    autoCaption: async (p) => ({ captions: Object.fromEntries(await Promise.all(p.images.map(async (i) => [i, (await leakyRead(join(p.dir, i))).text] as const))), failed: [] }),
    lora: {
      inspect: ({ path }) => leakyRead(path),
      convert: ({ path }) => leakyRead(path),
      merge: ({ inputs }) => leakyRead(inputs[0]!.path),
    },
    validation: { validate: () => ({ async *[Symbol.asyncIterator]() {} }) },
  });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** What every refused request must look like: a coded 4xx, no stack, nothing from outside. */
async function expectRefused(res: Response, label: string) {
  const text = await res.text();
  expect([label, res.status >= 400 && res.status < 500]).toEqual([label, true]);
  expect(text).not.toContain(SECRET);
  expect(text).not.toMatch(/root:x:0|\n\s+at /);
  expect(typeof JSON.parse(text).error.code).toBe("string");
}

async function outsideUntouched() {
  expect((await readdir(outside)).sort()).toEqual(["events.jsonl", "secret.json", "secret.txt"]); // no new.safetensors
  expect(await readFile(join(outside, "secret.txt"), "utf8")).toBe(`${SECRET}\n`);
}

describe("every route that takes a path refuses every path that leaves the project", () => {
  const attacks = [
    "../outside/secret.txt",
    "../../../../etc/passwd",
    "/etc/passwd",
    join(tmpdir(), "x", "secret.txt"),
    "..%2Foutside%2Fsecret.txt",
    "%2e%2e/outside/secret.txt",
    "..\\..\\outside\\secret.txt",
    "C:\\Windows\\win.ini",
    "\\\\server\\share\\x",
    "leak.txt",
    "leakdir/secret.txt",
    "dataset/b.txt",
    "dataset/../../outside/secret.txt",
    "a.png\0",
    "dangling.safetensors",
    "loop.txt",
    "dataset/d.txt",
  ];
  // Outputs must be .safetensors: the same attacks under that name ("leak.txt" becomes the link leak.safetensors).
  const outName = (p: string) => ({ "dataset/b.txt": "dangling.safetensors", "dataset/d.txt": "loop2.safetensors" })[p] ?? `${p.replace(/\.(txt|ini|safetensors)$/, "")}.safetensors`;
  const key = () => filesKeyFor(TOKEN);
  const post = (path: string, body: unknown): [string, RequestInit] => [path, { method: "POST", headers: json, body: JSON.stringify(body) }];
  const routes: Record<string, (p: string) => [string, RequestInit]> = {
    "GET /files/*": (p) => [`/files/${p.split("/").map(encodeURIComponent).join("/")}`, { headers: auth }],
    "GET /files/* (encoded slashes)": (p) => [`/files/${encodeURIComponent(p)}`, { headers: auth }],
    "GET /pf/<key>/*": (p) => [`/pf/${key()}/${p.split("/").map(encodeURIComponent).join("/")}`, { headers: HOST }],
    "GET /api/dataset/thumb": (p) => [`/api/dataset/thumb?path=${encodeURIComponent(p)}`, { headers: auth }],
    "GET /api/dataset/crop": (p) => [`/api/dataset/crop?path=${encodeURIComponent(p)}`, { headers: auth }],
    "PUT /api/captions": (p) => ["/api/captions", { method: "PUT", headers: json, body: JSON.stringify({ items: [{ image: p, text: "x", base: null }] }) }],
    "POST /api/dataset/pins": (p) => post("/api/dataset/pins", { distinct: [p, "a.png"] }),
    "POST /api/captions/auto": (p) => post("/api/captions/auto", { images: [p] }),
    "POST /api/lora/inspect": (p) => post("/api/lora/inspect", { path: p }),
    "POST /api/lora/convert (path)": (p) => post("/api/lora/convert", { path: p, to: "kohya", out: "o.safetensors" }),
    "POST /api/lora/convert (out)": (p) => post("/api/lora/convert", { path: "ok.safetensors", to: "kohya", out: outName(p) }),
    "POST /api/lora/merge (inputs)": (p) => post("/api/lora/merge", { inputs: [{ path: p, weight: 1 }], out: "m.safetensors" }),
    "POST /api/lora/merge (out)": (p) => post("/api/lora/merge", { inputs: [{ path: "ok.safetensors", weight: 1 }], out: outName(p) }),
  };
  it.each(Object.keys(routes))("%s", async (route) => {
    // Percent-escapes are an attack on URLs; in a JSON body "%2F" is three characters of a name inside the project.
    for (const attack of attacks.filter((a) => !a.includes("%") || route.startsWith("GET"))) {
      const [path, init] = routes[route]!(attack);
      await expectRefused(await app.request(path, init), `${route} ${JSON.stringify(attack)}`);
    }
    await outsideUntouched();
  });
});

describe("errors a route lets through are coded, without the machine's paths or a stack", () => {
  it.each([
    ["ENOENT", "E_FILE_NOT_FOUND", 404],
    ["EISDIR", "E_FILE_NOT_FOUND", 404],
    ["ELOOP", "E_PATH_OUTSIDE_PROJECT", 403],
    ["EACCES", "E_IO", 500],
    ["ENOSPC", "E_DISK_FULL", 507],
    ["EWHATEVER", "E_INTERNAL", 500],
  ])("%s is %s", async (errno, code, status) => {
    const failing = createApp({
      projectDir: project,
      token: TOKEN,
      lora: {
        inspect: async ({ path }) => {
          throw Object.assign(new Error(`${errno}: failed, open '${path}'\n    at open (node:fs)`), { code: errno, path, syscall: "open" });
        },
        convert: async () => ({}),
        merge: async () => ({}),
      },
    });
    const res = await failing.request("/api/lora/inspect", { method: "POST", headers: json, body: JSON.stringify({ path: "ok.safetensors" }) });
    const text = await res.clone().text();
    expect([res.status, JSON.parse(text).error.code]).toEqual([status, code]);
    expect(text).not.toContain(root);
    expect(text).not.toMatch(/\n\s+at |    at /);
  });
});

describe("files the server finds itself are read confined and bounded", () => {
  it.each(["/api/dataset", "/api/runs/r1/log", "/api/validation", "/api/lora/files", "/api/runs", "/api/dataset/summary"])(
    "GET %s shows nothing from outside the project",
    async (path) => {
      const res = await app.request(path, { headers: auth });
      expect(res.status).toBe(200);
      expect(await res.text()).not.toContain(SECRET);
    },
  );

  it.each(["/api/runs/r2/loss", "/api/runs/r2/samples", "/api/runs/r2/events", "/api/runs/r2/validate/events"])(
    "GET %s of a run whose event log links out is refused",
    async (path) => {
      const res = await app.request(path, { headers: auth });
      expect(res.status).toBe(403);
      await expectRefused(res, path);
    },
  );

  it("a caption that links out or is huge is a problem on its image, not text", async () => {
    const body = await (await app.request("/api/dataset", { headers: auth })).json();
    const byPath = Object.fromEntries(body.images.map((i: { path: string }) => [i.path, i]));
    expect(byPath["a.png"].caption).toBe("txcl, a caption\n");
    for (const [image, code] of [["b.png", "caption-outside-project"], ["c.png", "caption-too-large"], ["d.png", "caption-outside-project"]] as const) {
      expect(byPath[image].caption).toBeNull();
      expect(byPath[image].problems.map((p: { code: string }) => p.code)).toEqual([code]);
    }
  });

  it("the page cannot write a caption the listing would refuse to show", async () => {
    const res = await app.request("/api/captions", {
      method: "PUT",
      headers: json,
      body: JSON.stringify({ items: [{ image: "a.png", text: "x".repeat(65 * 1024), base: "txcl, a caption\n" }] }),
    });
    expect([res.status, (await res.json()).error.field]).toEqual([400, "items[].text"]);
    expect(await readFile(join(project, "dataset", "a.txt"), "utf8")).toBe("txcl, a caption\n");
  });

  it("an event log is read in bounded pieces; an absurd line without an end is skipped, not stalled on", async () => {
    const dir = join(root, "events");
    await mkdir(dir);
    const loss = (step: number) => `${JSON.stringify({ type: "loss", step, loss: 0.1 })}\n`;
    await writeFile(join(dir, "events.jsonl"), `${loss(1)}${"x".repeat(5000)}${loss(2)}${loss(3)}`);
    const first = await readEventsFrom({ runDir: dir, offset: 0, maxBytes: 1024 });
    expect(first.events.map((e) => e.event)).toHaveLength(1);
    const skipped = await readEventsFrom({ runDir: dir, offset: first.offset, maxBytes: 1024 });
    expect(skipped.offset).toBe(first.offset + 1024);
    const steps = (await readAllEvents({ runDir: dir, maxBytes: 1024 })).map((e) => (e.event as { step?: number }).step);
    expect(steps).toEqual([1, 3]); // step 2's line shares the absurd line (no newline between them)
  });
});

describe("writes from anywhere but the page itself are refused, on every write route", () => {
  const writes: Array<[string, string, unknown]> = [
    ["PUT", "/api/contract", { yaml: CONTRACT, base: CONTRACT }],
    ["PUT", "/api/captions", { items: [{ image: "a.png", text: "pwned", base: "txcl, a caption\n" }] }],
    ["POST", "/api/lint", { yaml: CONTRACT }],
    ["POST", "/api/plan", { yaml: CONTRACT }],
    ["POST", "/api/project/from-example", { example: "x" }],
    ["POST", "/api/dataset/pins", { reset: true }],
    ["POST", "/api/captions/auto", { images: ["a.png"] }],
    ["POST", "/api/dataset/upload", {}],
    ["POST", "/api/runs", undefined],
    ["POST", "/api/runs/r1/stop", undefined],
    ["POST", "/api/runs/r1/resume", undefined],
    ["POST", "/api/runs/r1/validate", undefined],
    ["POST", "/api/lora/inspect", { path: "ok.safetensors" }],
    ["POST", "/api/lora/convert", { path: "ok.safetensors", to: "kohya", out: "o.safetensors" }],
    ["POST", "/api/lora/merge", { inputs: [{ path: "ok.safetensors", weight: 1 }], out: "m.safetensors" }],
  ];
  const attacks: Array<[string, Record<string, string>, number]> = [
    ["another origin", { ...json, Origin: "http://evil.example" }, 403],
    ["another port of this host", { ...json, Origin: "http://127.0.0.1:9999" }, 403],
    ["Origin: null (sandboxed report)", { ...json, Origin: "null" }, 403],
    ["DNS rebinding (another Host name)", { ...json, Host: "evil.example:4747" }, 403],
    ["text/plain simple POST carrying JSON", { ...auth, "Content-Type": "text/plain" }, 415],
    ["form simple POST", { ...auth, "Content-Type": "application/x-www-form-urlencoded" }, 415],
  ];
  it.each(writes.map(([m, p]) => `${m} ${p}`))("%s", async (route) => {
    const [method, path, body] = writes.find(([m, p]) => `${m} ${p}` === route)!;
    for (const [name, headers, status] of attacks) {
      const res = await app.request(path, { method, headers, body: JSON.stringify(body ?? {}) });
      // The upload route takes multipart only: a text/plain or form body is a 415 there too.
      expect([name, res.status]).toEqual([name, status]);
      await expectRefused(res, `${route} ${name}`);
    }
    expect(await readFile(join(project, "lora.yaml"), "utf8")).toBe(CONTRACT);
    expect(await readFile(join(project, "dataset", "a.txt"), "utf8")).toBe("txcl, a caption\n");
    expect(started).toBe(0);
  });
});

describe("writes from the page never overwrite what they did not read", () => {
  const put = (path: string, body: unknown) => app.request(path, { method: "PUT", headers: json, body: JSON.stringify(body) });
  const contract = (base: unknown) => ({ yaml: CONTRACT.replace("name: demo", "name: edited"), base });
  const captions = (base: unknown) => ({ items: [{ image: "a.png", text: "edited", base }] });
  const files: Record<string, { path: string; file: () => string; body: (base: unknown) => unknown; disk: string }> = {
    contract: { path: "/api/contract", file: () => join(project, "lora.yaml"), body: contract, disk: CONTRACT },
    caption: { path: "/api/captions", file: () => join(project, "dataset", "a.txt"), body: captions, disk: "txcl, a caption\n" },
  };
  it.each(Object.keys(files))("%s: a stale or missing base is refused with the file named; the read base writes", async (name) => {
    const f = files[name]!;
    for (const [base, status, code] of [
      ["an older text\n", 409, "E_FILE_CHANGED"],
      [null, 409, "E_FILE_CHANGED"],
      [undefined, 400, "E_USAGE"],
      [42, 400, "E_USAGE"],
    ] as const) {
      const res = await put(f.path, f.body(base));
      const body = await res.clone().json();
      expect([base, res.status, body.error.code]).toEqual([base, status, code]);
      if (status === 409) expect(body.error.file).toBe(name === "contract" ? "lora.yaml" : "dataset/a.txt");
      await expectRefused(res, `${name} base ${String(base)}`);
      expect(await readFile(f.file(), "utf8")).toBe(f.disk);
    }
    expect((await put(f.path, f.body(f.disk))).status).toBe(200);
    // Written whole, by rename: the user's comments and unknown fields are the page's text, byte for byte; no temp file left.
    if (name === "contract") expect(await readFile(f.file(), "utf8")).toBe(CONTRACT.replace("name: demo", "name: edited"));
    expect((await readdir(join(f.file(), ".."))).filter((n) => n.endsWith(".tmp"))).toEqual([]);
    await writeFile(f.file(), f.disk);
  });
});

describe("a multi-GB file where a small one should be is refused unread, naming it", () => {
  const GB3 = 3 * 1024 ** 3;
  let big: ReturnType<typeof createApp>;
  let dir: string;
  beforeAll(async () => {
    dir = join(root, "huge");
    await mkdir(join(dir, "dataset"), { recursive: true });
    // Sparse: no disk used; a reader that read them whole would need their size in memory.
    await writeFile(join(dir, "lora.yaml"), CONTRACT);
    await truncate(join(dir, "lora.yaml"), GB3);
    await writeFile(join(dir, "dataset", "a.png"), await sharp({ create: { width: 8, height: 8, channels: 3, background: "#090909" } }).png().toBuffer());
    await writeFile(join(dir, "dataset", "a.txt"), "txcl");
    await truncate(join(dir, "dataset", "a.txt"), GB3);
    big = createApp({ projectDir: dir, token: TOKEN, parseContract: ({ text }) => parseYaml(text), lint: async () => [], plan: () => ({}) });
  });

  it.each<[string, string, unknown, string]>([
    ["GET", "/api/contract", undefined, "lora.yaml"],
    ["PUT", "/api/contract", { yaml: CONTRACT, base: CONTRACT }, "lora.yaml"],
    ["GET", "/api/dataset", undefined, "lora.yaml"],
  ])("%s %s: 422 E_FILE_TOO_LARGE naming %s", async (method, path, body, file) => {
    const res = await big.request(path, { method, headers: json, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.clone().text();
    expect([res.status, JSON.parse(text).error.code, JSON.parse(text).error.file]).toEqual([422, "E_FILE_TOO_LARGE", file]);
    await expectRefused(res, path);
    expect((await stat(join(dir, "lora.yaml"))).size).toBe(GB3);
  });

  it("a caption save over a 3 GB caption file: 422 E_FILE_TOO_LARGE naming it, nothing written", async () => {
    await writeFile(join(dir, "lora.yaml"), CONTRACT);
    const res = await big.request("/api/captions", { method: "PUT", headers: json, body: JSON.stringify({ items: [{ image: "a.png", text: "txcl, new", base: "txcl" }] }) });
    const body = await res.clone().json();
    expect([res.status, body.error.code, body.error.file]).toEqual([422, "E_FILE_TOO_LARGE", "dataset/a.txt"]);
    await expectRefused(res, "PUT /api/captions");
    expect((await stat(join(dir, "dataset", "a.txt"))).size).toBe(GB3);
  });
});
