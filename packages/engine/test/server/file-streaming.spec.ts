import { mkdir, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { get, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { startServer, type RunningServer } from "@loraspec/engine/server/start-server.js";
import { byteRange } from "@loraspec/engine/server/routes/file-routes.js";
import { fakeRuns } from "./fake-runs.js";

/**
 * /files/ streams a project file rather than reading it whole: a multi-GB LoRA or checkpoint costs
 * the server one chunk, not its size. Over a real socket (what `loraspec ui` serves), so a client
 * that stops reading or goes away is the one a browser is.
 */
const TOKEN = "stream-token-0123456789abcdef";
const GB = 1024 * 1024 * 1024;

let root: string;
let server: RunningServer;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "loraspec-stream-"));
  await writeFile(join(root, "lora.yaml"), "version: 1\nname: demo\ndataset: { path: ./dataset }\n");
  // Sparse: 3 GB on paper, no disk. Over 2 GiB, a whole-file read is refused outright by Node.
  await writeFile(join(root, "big.safetensors"), "");
  await truncate(join(root, "big.safetensors"), 3 * GB);
  await writeFile(join(root, "shrinks.bin"), Buffer.alloc(64 * 1024 * 1024, 7));
  await writeFile(join(root, "small.txt"), "0123456789");
  await mkdir(join(root, "sub"));
  server = await startServer({
    projectDir: root,
    token: TOKEN,
    port: 0,
    runs: fakeRuns(new Map()),
    parseContract: ({ text }) => parseYaml(text),
  } as Parameters<typeof startServer>[0]);
});

afterAll(async () => {
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

function request(path: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  return new Promise((ok, fail) => {
    get(`${server.url}${path.slice(1)}`, { headers: { Authorization: `Bearer ${TOKEN}`, ...headers } }, ok).on("error", fail);
  });
}

/** Reads at least `bytes` of the body, then stops reading (the response is left paused). */
function readSome(res: IncomingMessage, bytes: number): Promise<Buffer> {
  return new Promise((ok, fail) => {
    const parts: Buffer[] = [];
    let got = 0;
    const onData = (b: Buffer) => {
      parts.push(b);
      got += b.length;
      if (got >= bytes) {
        res.pause();
        res.off("data", onData);
        ok(Buffer.concat(parts));
      }
    };
    res.on("data", onData);
    res.on("error", fail);
    res.on("end", () => ok(Buffer.concat(parts)));
  });
}

describe("GET /files/ streams the file", () => {
  it("a 3 GB file: headers with its length at once, the first MBs stream, the server's memory does not grow by GBs", async () => {
    const before = process.memoryUsage().rss;
    const res = await request("/files/big.safetensors");
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-length"]).toBe(String(3 * GB));
    expect(res.headers["content-type"]).toBe("application/octet-stream");
    expect(res.headers["content-disposition"]).toContain("big.safetensors");
    expect(res.headers["content-security-policy"]).toMatch(/(^|;\s*)sandbox(;|$)/);
    const head = await readSome(res, 8 * 1024 * 1024);
    expect(head.length).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(head.every((b) => b === 0)).toBe(true);
    // Give a read-ahead time to show itself before measuring.
    await new Promise((r) => setTimeout(r, 200));
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 1024 * 1024);
    res.destroy();
  });

  it("a small file comes whole, its type as before", async () => {
    const res = await request("/files/small.txt");
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-length"]).toBe("10");
    expect(res.headers["content-type"]).toContain("text/plain");
    expect((await readSome(res, Infinity)).toString()).toBe("0123456789");
  });

  it("a Range request gets 206 and those bytes; one past the end 416", async () => {
    const part = await request("/files/small.txt", { Range: "bytes=2-5" });
    expect(part.statusCode).toBe(206);
    expect(part.headers["content-range"]).toBe("bytes 2-5/10");
    expect(part.headers["content-length"]).toBe("4");
    expect((await readSome(part, Infinity)).toString()).toBe("2345");
    const tail = await request("/files/big.safetensors", { Range: `bytes=${3 * GB - 3}-` });
    expect(tail.statusCode).toBe(206);
    expect((await readSome(tail, Infinity)).length).toBe(3);
    const past = await request("/files/small.txt", { Range: "bytes=10-" });
    expect(past.statusCode).toBe(416);
    expect(past.headers["content-range"]).toBe("bytes */10");
    past.resume();
  });

  it("a file that shrinks mid-stream closes the response short instead of ending it cleanly", async () => {
    const res = await request("/files/shrinks.bin");
    expect(res.headers["content-length"]).toBe(String(64 * 1024 * 1024));
    await readSome(res, 1024 * 1024);
    await truncate(join(root, "shrinks.bin"), 2 * 1024 * 1024);
    const outcome = await new Promise<string>((ok) => {
      res.on("end", () => ok("end"));
      res.on("aborted", () => ok("aborted"));
      res.on("error", () => ok("error"));
      res.on("close", () => ok(res.complete ? "end" : "aborted"));
      res.resume();
    });
    expect(outcome).not.toBe("end");
  });

  it("missing files and folders stay coded 404s", async () => {
    for (const path of ["/files/nope.bin", "/files/sub"]) {
      const res = await request(path);
      expect(res.statusCode).toBe(404);
      res.resume();
    }
  });
});

describe("byteRange", () => {
  it.each([
    [undefined, 10, undefined],
    ["bytes=0-", 10, { start: 0, end: 9 }],
    ["bytes=3-100", 10, { start: 3, end: 9 }],
    ["bytes=-4", 10, { start: 6, end: 9 }],
    ["bytes=-40", 10, { start: 0, end: 9 }],
    ["bytes=10-", 10, "unsatisfiable"],
    ["bytes=-0", 10, "unsatisfiable"],
    ["bytes=5-2", 10, undefined],
    ["bytes=0-1,4-5", 10, undefined],
    ["items=0-1", 10, undefined],
  ])("%s of %i bytes", (header, size, want) => {
    expect(byteRange(header, size)).toEqual(want);
  });
});
