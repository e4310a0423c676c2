import type { FalClient, RequestMiddleware, StorageSettings } from "@fal-ai/client";
import { LoraspecError } from "@loraspec/core/errors.js";

/** One runner's fal client and what its steps share: the key, the fetch, the request rewriting, the pacing. */
export interface FalConnection {
  client: FalClient;
  fetch: typeof fetch;
  credentials: string | undefined;
  /** The client's request rewriting (other hosts, a proxy, the emulator); the raw submit and lookup use it too. */
  middleware: RequestMiddleware | undefined;
  pollMs: number;
  /** How old a lost submit must be before "fal lists no such request" is trusted (undefined: FAL_POLICY). */
  lookupSettleMs?: number;
  /** Lifecycle of the uploaded dataset ZIP (undefined: FAL_POLICY). */
  storage?: StorageSettings;
}

/** Rewrites requests for fal's default queue / REST / API hosts to the given ones; undefined when none is given. */
export function hostMiddleware(hosts: { queue?: string; rest?: string; api?: string }): RequestMiddleware | undefined {
  const rewrite: [string, string][] = [];
  if (hosts.queue) rewrite.push(["https://queue.fal.run/", `${hosts.queue.replace(/\/$/, "")}/`]);
  if (hosts.rest) rewrite.push(["https://rest.fal.ai/", `${hosts.rest.replace(/\/$/, "")}/`]);
  if (hosts.api) rewrite.push(["https://api.fal.ai/", `${hosts.api.replace(/\/$/, "")}/`]);
  if (rewrite.length === 0) return undefined;
  return async (request) => {
    const hit = rewrite.find(([from]) => request.url.startsWith(from));
    return hit ? { ...request, url: hit[1] + request.url.slice(hit[0].length) } : request;
  };
}

export function requireKey(credentials: string | undefined): void {
  if (!credentials) {
    throw new LoraspecError("E_REMOTE_AUTH", "no fal.ai key: FAL_KEY is not set", {
      hint: "export FAL_KEY=... (from https://fal.ai/dashboard/keys); loraspec never stores it",
    });
  }
}
