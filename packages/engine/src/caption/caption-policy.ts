/** Retry and request policy for captioning backends, as data (fal-js `retry.ts` style). */
export interface RetryPolicy {
  /** Attempts after the first. */
  maxRetries: number;
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
  /** 0..1: each delay is multiplied by a random factor in [1 - jitter, 1 + jitter]. */
  jitter: number;
}

export const CAPTION_RETRY_POLICY: RetryPolicy & { source: string; asOf: string } = {
  maxRetries: 4,
  initialDelayMs: 500,
  maxDelayMs: 8_000,
  factor: 2,
  jitter: 0.2,
  source: "ours, shaped like @fal-ai/client retry.ts (3 retries, exponential 1 s -> 30 s + jitter; trainers.md §4.6), shorter because a caption is cheap to redo",
  asOf: "2026-11",
};

/** HTTP statuses worth retrying: timeouts, rate limits and server-side failures. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 409, 425, 429, 500, 502, 503, 504]);

/**
 * Per-request timeout (`caption --timeout`): a VLM answer for one image rarely takes more than a
 * minute even on CPU servers; a server that hangs costs at most this (plus one retry) per image.
 */
export const CAPTION_REQUEST_TIMEOUT_MS = 60_000;

/** A request that timed out is retried at most this many times (a hung server stays hung). */
export const CAPTION_TIMEOUT_RETRIES = 1;

/** While requests are in flight and nothing finishes, a progress line this often (so a wait is visible). */
export const CAPTION_HEARTBEAT_MS = 10_000;

/** Long side of the JPEG sent to a remote captioner: VLMs tile at ~336-1024 px, so more only costs upload time. */
export const CAPTION_IMAGE_LONG_SIDE = 1024;

export function retryDelayMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** attempt);
  return Math.round(base * (1 - policy.jitter + 2 * policy.jitter * random()));
}
