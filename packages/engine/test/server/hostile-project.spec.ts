import { mkdir, mkdtemp, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { filesKeyFor } from "@loraspec/engine/server/app-context.js";
import { createApp } from "@loraspec/engine/server/create-app.js";
import { fakeRuns } from "./fake-runs.js";
import type { DatasetScan, RunsService } from "@loraspec/engine/server/deps.js";
import { projectToken } from "@loraspec/engine/server/project-token.js";

/**
 * The server against what may live in a project folder (files from downloaded LoRAs and
 * datasets, a run store copied from elsewhere) and against requests a browser page or an old
 * client may send. The browser half (scripts that try to reach the API) is in
 * packages/web/test/ui-safety.e2e.spec.ts.
 */
const TOKEN = "hostile-token-0123456789abcdef";
const HOST = { Host: "127.0.0.1:4747" };
const auth = { ...HOST, Authorization: `Bearer ${TOKEN}` };

let root: string;
let project: string;
let app: ReturnType<typeof createApp>;
let scans = 0;
const runDirs = new Map<string, string>();

const runs: RunsService = fakeRuns(runDirs);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-hostile-"));
  project = join(root, "project");
  await mkdir(join(project, "dataset"), { recursive: true });
  await mkdir(join(root, "outside"), { recursive: true });
  await writeFile(join(root, "outside", "run.log"), "secret outside the project\n");
  await writeFile(join(project, "lora.yaml"), "version: 1\nname: demo\ndataset: { path: ./dataset }\n");
  await writeFile(join(project, "report.html"), "<script>parent.fetch('/api/contract')</script>");
  await writeFile(join(project, "evil.svg"), '<svg xmlns="http://www.w3.org/2000/svg"><script>fetch("/api/contract")</script></svg>');
  await writeFile(join(project, "evil.js"), "fetch('/api/contract')");
  await writeFile(join(project, "blob.bin"), "\x00\x01");
  await writeFile(join(project, "a.png"), "\x89PNG");
  await writeFile(join(project, "dataset", "a.png"), "\x89PNG");
  app = createApp({
    projectDir: project,
    token: TOKEN,
    runs,
    pollMs: 20,
    validation: { validate: () => ({ async *[Symbol.asyncIterator]() {} }) },
    parseContract: ({ text }) => parseYaml(text),
    scanDataset: async (): Promise<DatasetScan> => {
      scans++;
      return { problems: {}, summary: { count: scans } };
    },
  });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("project files are served so that nothing in them can run or reach the API", () => {
  it.each([
    ["report.html", "text/html", false],
    ["evil.svg", "image/svg+xml", false],
    ["evil.js", "application/octet-stream", true],
    ["a.png", "image/png", false],
    ["blob.bin", "application/octet-stream", true],
  ])("%s: %s under a script-less sandbox, nosniff, attachment %s", async (file, type, attachment) => {
    for (const path of [`/files/${file}`, `/pf/${filesKeyFor(TOKEN)}/${file}`]) {
      const res = await app.request(path, { headers: path.startsWith("/pf/") ? HOST : auth });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain(type);
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp).toMatch(/(^|;\s*)sandbox(;|$)/);
      expect(csp).not.toMatch(/allow-same-origin|allow-scripts/);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.has("content-disposition")).toBe(attachment);
    }
  });

  it("the files key opens files only, only for reading, and only the right key", async () => {
    const key = filesKeyFor(TOKEN);
    expect((await app.request(`/pf/${key}/lora.yaml`, { headers: HOST })).status).toBe(200);
    expect((await app.request(`/pf/${key}/api/contract`, { headers: HOST })).status).toBe(404);
    expect((await app.request(`/pf/wrong-key-000000000000/lora.yaml`, { headers: HOST })).status).toBe(401);
    expect((await app.request(`/pf/${key}/../api/contract`, { headers: HOST })).status).toBe(401);
    expect((await app.request(`/pf/${key}/lora.yaml`, { method: "POST", headers: HOST })).status).toBe(401);
    expect((await app.request(`/pf/${key}/..%2F..%2Foutside%2Frun.log`, { headers: HOST })).status).toBe(403);
    // Rotating the token changes the key.
    expect(filesKeyFor(`${TOKEN}x`)).not.toBe(key);
  });
});

describe("requests the server refuses", () => {
  it.each([
    ["no Host header", { Authorization: `Bearer ${TOKEN}` }, "GET", 403],
    ["Origin: null on a write", { ...auth, Origin: "null", "Content-Type": "application/json" }, "PUT", 403],
    ["another Origin on a write", { ...auth, Origin: "http://127.0.0.1:9999", "Content-Type": "application/json" }, "PUT", 403],
    ["an unparsable Origin on a write", { ...auth, Origin: "::", "Content-Type": "application/json" }, "PUT", 403],
    ["our own Origin on a write", { ...auth, Origin: "http://127.0.0.1:4747", "Content-Type": "application/json" }, "PUT", 200],
    ["Origin: null on a read", { ...auth, Origin: "null" }, "GET", 200],
  ])("%s", async (_name, headers, method, status) => {
    const yaml = "version: 1\nname: demo\ndataset: { path: ./dataset }\n";
    const body = method === "PUT" ? JSON.stringify({ yaml, base: yaml }) : undefined;
    const res = await app.request("/api/contract", { method, headers, body });
    expect(res.status).toBe(status);
  });

  it.each(["/files/%E0%A4%A", "/files/%", "/files/a%ZZb", `/pf/${filesKeyFor(TOKEN)}/%E0%A4%A`])("malformed percent-encoding %s is 400 E_USAGE", async (path) => {
    const res = await app.request(path, { headers: auth });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe("E_USAGE");
  });
});

describe("run folders the run service reports are confined to the project", () => {
  it("a run whose folder is outside the project cannot be read or written through", async () => {
    runDirs.set("evil", join(root, "outside"));
    for (const [method, path] of [
      ["GET", "/api/runs/evil/log"],
      ["GET", "/api/runs/evil/loss"],
      ["GET", "/api/runs/evil/samples"],
      ["GET", "/api/runs/evil"],
      ["POST", "/api/runs/evil/validate"],
    ] as const) {
      const res = await app.request(path, { method, headers: auth });
      expect([path, res.status]).toEqual([path, 403]);
      expect((await res.json()).error.code).toBe("E_PATH_OUTSIDE_PROJECT");
    }
  });

  it("the log tail is the run's own log, without terminal escapes, never validation/worker.log", async () => {
    const dir = join(project, ".loraspec", "runs", "r1");
    await mkdir(join(dir, "validation"), { recursive: true });
    runDirs.set("r1", dir);
    await writeFile(join(dir, "stderr.log"), "steps:  10%|\x1b[32m#\x1b[0m| 1/10 [00:01<00:09, 1.00it/s]\rsteps:  20%|##| 2/10\n");
    await writeFile(join(dir, "validation", "worker.log"), "validation noise\n");
    const log = await (await app.request("/api/runs/r1/log", { headers: auth })).json();
    expect(log.file).toBe("stderr.log");
    expect(log.lines.join("\n")).not.toMatch(/\x1b|validation noise/);
    expect(log.lines).toContain("steps:  10%|#| 1/10 [00:01<00:09, 1.00it/s]");
  });
});

describe("the dataset scan", () => {
  it("is done once and redone only when a dataset file changes", async () => {
    const get = async () => (await app.request("/api/dataset", { headers: auth })).json();
    const before = scans;
    await get();
    await get();
    await app.request("/api/dataset/summary", { headers: auth });
    await app.request("/api/dataset/summary", { headers: auth });
    const afterFirst = scans;
    expect(afterFirst - before).toBe(2); // the listing's scan, and the summary's (the same scan, keyed by what it depends on)
    // A caption written (as the caption editor does) changes the folder: scanned again.
    await writeFile(join(project, "dataset", "a.txt"), "zxqv, a caption\n");
    const listing = await get();
    expect(scans).toBe(afterFirst + 1);
    expect(listing.images[0].caption).toBe("zxqv, a caption\n");
    // A file touched to another mtime (same size) counts as a change too.
    const t = new Date(Date.now() + 5000);
    await utimes(join(project, "dataset", "a.png"), t, t);
    await get();
    expect(scans).toBe(afterFirst + 2);
  });
});

describe("the project's access token", () => {
  it("is stable, owner-only, replaced when rotated or when others could read it", async () => {
    const first = await projectToken({ projectDir: project });
    expect(first.created).toBe(true);
    expect((await stat(first.file)).mode & 0o777).toBe(0o600);
    expect((await projectToken({ projectDir: project })).token).toBe(first.token);
    const rotated = await projectToken({ projectDir: project, rotate: true });
    expect(rotated.token).not.toBe(first.token);
    expect((await projectToken({ projectDir: project })).token).toBe(rotated.token);
    const { chmod } = await import("node:fs/promises");
    await chmod(first.file, 0o644);
    const replaced = await projectToken({ projectDir: project });
    expect(replaced.created).toBe(true);
    expect(replaced.token).not.toBe(rotated.token);
  });
});
