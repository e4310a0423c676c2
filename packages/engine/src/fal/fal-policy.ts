/** How the fal runner waits and retries: plain data with sources (ecosystem.md §A2, §9). */
export const FAL_POLICY = {
  pollIntervalMs: {
    // Training jobs run for minutes to hours; @fal-ai/client's 500 ms default is for inference.
    value: 5_000,
    source: "ours; @fal-ai/client 1.10.1 queue.ts DEFAULT_POLL_INTERVAL = 500 ms is the inference default (trainers.md §4.6)",
    asOf: "2026-08-02",
  },
  transientRetries: {
    // A status poll that still fails after the client's own 5 retries is retried by us this many
    // times before the run is marked interrupted (the remote job keeps running; --resume re-attaches).
    value: 3,
    source: "ours, on top of @fal-ai/client status retries (5, incl. 500) (trainers.md §4.6)",
    asOf: "2026-08-02",
  },
  datasetExpiresIn: {
    // The ZIP holds the user's photos: on fal's CDN no longer than a queued + running job needs.
    value: "1d",
    source: "ours; lifecycle presets never|immediate|1h|1d|7d|30d|1y (@fal-ai/client storage.ts, trainers.md §4.5)",
    asOf: "2026-08-02",
  },
} as const;
