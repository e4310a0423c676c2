import { existsSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { LoraspecError } from "@loraspec/core/errors.js";
import { createApp, type CreateAppParams } from "./create-app.js";
import { projectToken } from "./project-token.js";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export interface StartServerParams extends Omit<CreateAppParams, "token" | "allowedHosts"> {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Defaults to the project's stable token (.loraspec/ui-token, created on first use). */
  token?: string;
  /** Replace the project's stored token with a new one (open tabs must be reopened). */
  rotateToken?: boolean;
}

export interface RunningServer {
  url: string;
  /** The URL with the token: what the user opens. */
  openUrl: string;
  token: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves the API and the page. Binds 127.0.0.1 unless told otherwise; either way every request
 * needs the token (reference/perf-reliability.md §4e: ai-toolkit's UI listened on all
 * interfaces with auth off by default).
 */
export async function startServer(params: StartServerParams): Promise<RunningServer> {
  const host = params.host ?? "127.0.0.1";
  // Stable across restarts, so open tabs keep working (and a rotation is a deliberate act).
  const token = params.token ?? (await projectToken({ projectDir: params.projectDir, rotate: params.rotateToken })).token;
  const loopback = LOOPBACK.has(host);
  const app = createApp({
    ...params,
    token,
    webDist: params.webDist ?? findUp("packages/web/dist/index.html")?.replace(/[\\/]index\.html$/, ""),
    examplesDir: params.examplesDir ?? findUp("examples"),
    allowedHosts: loopback ? ["127.0.0.1", "localhost", "[::1]"] : undefined,
  });
  const server = serve({ fetch: app.fetch, hostname: host === "localhost" ? "127.0.0.1" : host, port: params.port ?? 0 });
  await new Promise<void>((ok, fail) => {
    server.once("listening", () => ok());
    server.once("error", (error: NodeJS.ErrnoException) =>
      fail(
        error.code === "EADDRINUSE"
          ? new LoraspecError("E_USAGE", `Port ${params.port} is in use.`, { hint: "Pass another --port, or 0 for any free port." })
          : error,
      ),
    );
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  const url = `http://${shown}:${port}/`;
  return {
    url,
    openUrl: `${url}?token=${encodeURIComponent(token)}`,
    token,
    host,
    port,
    close: () =>
      new Promise<void>((ok) => {
        // SSE streams stay open; close them with the server.
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => ok());
      }),
  };
}

/** Finds a file or folder of the loraspec checkout from the bundle (dist/) or the sources. */
function findUp(rel: string): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, rel);
    if (existsSync(candidate)) return resolve(candidate);
    dir = dirname(dir);
  }
  return undefined;
}
