import { timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { LoraspecError } from "@loraspec/core/errors.js";

export const TOKEN_COOKIE = "loraspec_token";

/**
 * Every request needs the access token: `Authorization: Bearer`, the cookie set when the page
 * was opened from the printed URL, or `?token=` (that first visit). Requests that change
 * something must come from the page itself (same Origin), so another site open in the same
 * browser cannot drive the API. When `allowedHosts` is set (loopback binding), the Host header
 * must be one of them, which defeats DNS rebinding.
 */
export function requireToken(params: { token: string; allowedHosts?: readonly string[] }): MiddlewareHandler {
  const expected = Buffer.from(params.token, "utf8");
  const matches = (given: string | undefined) => {
    if (!given) return false;
    const buf = Buffer.from(given, "utf8");
    return buf.length === expected.length && timingSafeEqual(buf, expected);
  };
  return async (c, next) => {
    if (params.allowedHosts) {
      const host = (c.req.header("host") ?? "").replace(/:\d+$/, "").toLowerCase();
      if (host && !params.allowedHosts.includes(host)) {
        throw new LoraspecError("E_FORBIDDEN", `Host "${host}" is not served.`, {
          hint: "Open the URL that `loraspec ui` printed.",
        });
      }
    }
    const bearer = c.req.header("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
    const query = c.req.query("token");
    const cookie = getCookie(c, TOKEN_COOKIE);
    if (!matches(bearer) && !matches(query) && !matches(cookie)) {
      throw new LoraspecError("E_UNAUTHORIZED", "Missing or wrong access token.", {
        hint: "Open the URL that `loraspec ui` printed (it carries ?token=...).",
      });
    }
    if (!["GET", "HEAD", "OPTIONS"].includes(c.req.method)) {
      const origin = c.req.header("origin");
      if (origin && origin !== "null") {
        const host = c.req.header("host");
        let originHost: string | undefined;
        try {
          originHost = new URL(origin).host;
        } catch {
          originHost = undefined;
        }
        if (!host || originHost !== host) {
          throw new LoraspecError("E_FORBIDDEN", `Cross-origin request from ${origin} refused.`);
        }
      }
    }
    if (matches(query) && !matches(cookie)) {
      // The first visit carries the token in the URL; later requests (images, SSE) use the cookie.
      setCookie(c, TOKEN_COOKIE, params.token, { httpOnly: true, sameSite: "Strict", path: "/" });
    }
    await next();
  };
}
