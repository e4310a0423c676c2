/** The one way the page talks to the server: same origin, the token cookie, JSON both ways. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/**
 * Once the server refuses this tab's token (it was restarted with another, or rotated), every
 * call stops here instead of polling on with 401s; the page shows a banner that says what to do.
 */
let refused = false;
const refusedListeners = new Set<() => void>();

export function onTokenRefused(listener: () => void): () => void {
  refusedListeners.add(listener);
  if (refused) listener();
  return () => refusedListeners.delete(listener);
}

export function tokenRefused(): boolean {
  return refused;
}

export async function api<T = unknown>(path: string, init: { method?: string; body?: unknown; form?: FormData } = {}): Promise<T> {
  if (refused) throw new ApiError(401, "E_UNAUTHORIZED", "The server no longer accepts this tab's access token.");
  const headers: Record<string, string> = {};
  let body: BodyInit | undefined;
  if (init.form) body = init.form;
  else if (init.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(init.body);
  }
  const res = await fetch(path, { method: init.method ?? (body ? "POST" : "GET"), headers, body, credentials: "same-origin" });
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (res.status === 401 && !refused) {
    refused = true;
    for (const listener of refusedListeners) listener();
  }
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string; hint?: string; field?: string } } | undefined)?.error;
    throw new ApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? (text || res.statusText), err?.hint, err?.field);
  }
  return data as T;
}

/** Where project files are served: the server's `/pf/<key>/`, which sandboxed reports can load from without the cookie. */
let filesBase = "/files/";

export function setFilesBase(base: string): void {
  filesBase = base;
}

export function fileUrl(projectPath: string): string {
  return `${filesBase}${projectPath.split("/").map(encodeURIComponent).join("/")}`;
}

export function errorText(error: unknown): string {
  if (error instanceof ApiError) return `${error.message}${error.hint ? ` (${error.hint})` : ""}`;
  return error instanceof Error ? error.message : String(error);
}
