import { timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { LoraspecError } from "@loraspec/core/errors.js";

/** The cookie's name without the port; cookies ignore ports, so each server's carries its own. */
export const TOKEN_COOKIE_PREFIX = "loraspec_token_";

/** The token cookie's name for the port the request came to (from its Host header). */
export function tokenCookieName(host: string | undefined): string {
  const port = host?.match(/:(\d{1,5})$/)?.[1] ?? "80";
  return `${TOKEN_COOKIE_PREFIX}${port}`;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Every request needs the access token: `Authorization: Bearer`, the cookie set when the page
 * was opened from the printed URL, or `?token=` (that first visit). The one exception is a GET
 * of a project file under `/pf/<filesKey>/`: sandboxed documents (reports) have an opaque origin
 * and are sent no cookie, so their images load by this read-only key instead.
 * A Host header is required, and when `allowedHosts` is set (loopback binding) it must be one of
 * them, which defeats DNS rebinding. Requests that change something must come from the page
 * itself: an Origin other than ours, or `null` (sandboxed documents, file: pages), is refused.
 */
export function requireToken(params: { token: string; allowedHosts?: readonly string[]; filesKey?: string }): MiddlewareHandler {
  const matches = constantTimeMatcher(params.token);
  const filesPrefix = params.filesKey ? `/pf/${params.filesKey}/` : undefined;
  return async (c, next) => {
    const hostHeader = c.req.header("host");
    checkHost(hostHeader, params.allowedHosts);
    if (filesPrefix && SAFE_METHODS.has(c.req.method) && c.req.path.startsWith(filesPrefix)) return next();
    const cookieName = tokenCookieName(hostHeader);
    const bearer = c.req.header("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
    const query = c.req.query("token");
    const cookie = getCookie(c, cookieName);
    if (!matches(bearer) && !matches(query) && !matches(cookie)) {
      throw new LoraspecError("E_UNAUTHORIZED", "Missing or wrong access token.", {
        hint: "Open the URL that `loraspec ui` printed (it carries ?token=...).",
      });
    }
    if (!SAFE_METHODS.has(c.req.method)) checkOrigin(c, hostHeader!);
    if (matches(query) && !matches(cookie)) {
      // The first visit carries the token in the URL; later requests (images, SSE) use the cookie.
      setCookie(c, cookieName, params.token, { httpOnly: true, sameSite: "Strict", path: "/" });
    }
    await next();
  };
}

function constantTimeMatcher(token: string) {
  const expected = Buffer.from(token, "utf8");
  return (given: string | undefined) => {
    if (!given) return false;
    const buf = Buffer.from(given, "utf8");
    return buf.length === expected.length && timingSafeEqual(buf, expected);
  };
}

function checkHost(hostHeader: string | undefined, allowed: readonly string[] | undefined): void {
  // HTTP/1.0 may omit Host; a request that names no host cannot be checked, so it is refused.
  if (!hostHeader) {
    throw new LoraspecError("E_FORBIDDEN", "The request has no Host header.", { hint: "Open the URL that `loraspec ui` printed." });
  }
  if (!allowed) return;
  const host = hostHeader.replace(/:\d+$/, "").toLowerCase();
  if (!allowed.includes(host)) {
    throw new LoraspecError("E_FORBIDDEN", `Host "${host}" is not served.`, { hint: "Open the URL that `loraspec ui` printed." });
  }
}

function checkOrigin(c: Context, host: string): void {
  const origin = c.req.header("origin");
  // No Origin: not a browser (curl, the CLI with a bearer token); browsers always send it on writes.
  if (origin === undefined) return;
  let originHost: string | undefined;
  try {
    originHost = origin === "null" ? undefined : new URL(origin).host;
  } catch {
    originHost = undefined;
  }
  if (originHost !== host) throw new LoraspecError("E_FORBIDDEN", `Cross-origin request from ${origin} refused.`);
}
