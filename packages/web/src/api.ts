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

export async function api<T = unknown>(path: string, init: { method?: string; body?: unknown; form?: FormData } = {}): Promise<T> {
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
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string; hint?: string; field?: string } } | undefined)?.error;
    throw new ApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? (text || res.statusText), err?.hint, err?.field);
  }
  return data as T;
}

export function fileUrl(projectPath: string): string {
  return `/files/${projectPath.split("/").map(encodeURIComponent).join("/")}`;
}

export function errorText(error: unknown): string {
  if (error instanceof ApiError) return `${error.message}${error.hint ? ` (${error.hint})` : ""}`;
  return error instanceof Error ? error.message : String(error);
}
