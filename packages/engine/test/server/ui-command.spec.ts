import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../../../..");
const bin = join(root, "bin/loraspec.mjs");
const children: ChildProcess[] = [];

/** Starts `loraspec ui` and resolves with the URL it prints (the bundle is built by the global setup). */
function startUi(args: string[], cwd: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [bin, "ui", "--no-open", ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  return new Promise((ok, fail) => {
    let out = "";
    let err = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const line = out.split("\n").find((l) => l.startsWith("http"));
      if (line) ok({ url: line.trim(), child });
    });
    child.stderr!.on("data", (d) => (err += d));
    child.on("exit", (code) => fail(new Error(`ui exited ${code}: ${err}`)));
  });
}

afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGTERM");
});

describe("loraspec ui", () => {
  it("binds 127.0.0.1 by default, prints a URL with the project's stable token, and rotates it on request", async () => {
    const dir = await mkdtemp(join(tmpdir(), "loraspec-ui-cmd-"));
    try {
      const a = await startUi(["--port", "0"], dir);
      const url = new URL(a.url);
      expect(url.hostname).toBe("127.0.0.1");
      const token = url.searchParams.get("token")!;
      expect(token.length).toBeGreaterThanOrEqual(32);
      const api = new URL("/api/project", url);
      expect((await fetch(api)).status).toBe(401);
      const ok = await fetch(api, { headers: { Authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expect((await ok.json()).hasContract).toBe(false);
      // A Host other than loopback (DNS rebinding) is refused even with the token.
      const { request } = await import("node:http");
      const status = await new Promise<number>((done) =>
        request({ host: "127.0.0.1", port: url.port, path: "/api/project", headers: { Host: "evil.example", Authorization: `Bearer ${token}` } }, (res) =>
          done(res.statusCode ?? 0),
        ).end(),
      );
      expect(status).toBe(403);
      // HTTP/1.0 without a Host header cannot be checked against the allowed hosts: refused.
      const raw = await new Promise<string>((done, fail) => {
        const socket = connect(Number(url.port), "127.0.0.1", () => socket.end(`GET /api/project HTTP/1.0\r\nAuthorization: Bearer ${token}\r\n\r\n`));
        let text = "";
        socket.on("data", (d) => (text += d));
        socket.on("end", () => done(text));
        socket.on("error", fail);
      });
      expect(raw).toMatch(/^HTTP\/1\.[01] 403/);
      // The token lives in the project, owner-only, and a restart keeps it: open tabs go on working.
      expect((await stat(join(dir, ".loraspec", "ui-token"))).mode & 0o777).toBe(0o600);
      const b = await startUi(["--port", "0"], dir);
      expect(new URL(b.url).searchParams.get("token")).toBe(token);
      // --rotate-token replaces it: the old one is refused from then on.
      const c = await startUi(["--port", "0", "--rotate-token"], dir);
      const rotated = new URL(c.url).searchParams.get("token")!;
      expect(rotated).not.toBe(token);
      const cApi = new URL("/api/project", c.url);
      expect((await fetch(cApi, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(401);
      expect((await fetch(cApi, { headers: { Authorization: `Bearer ${rotated}` } })).status).toBe(200);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a bad port with a usage error, not a stack trace", async () => {
    const child = spawn(process.execPath, [bin, "ui", "--no-open", "--port", "http"], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    const code = await new Promise<number | null>((done) => child.on("exit", done));
    expect(code).toBe(2);
    expect(err).toContain("E_USAGE");
    expect(err).not.toContain("    at ");
  });
});
