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
  lookupClockSlackMs: {
    // The journal's time is our clock; fal's sent_at is theirs. Look this far before it.
    value: 10 * 60_000,
    source: "ours; Platform API requests/by-endpoint `start` filter (https://fal.ai/docs/platform-apis/v1/models/requests/by-endpoint)",
    asOf: "2026-12-02",
  },
  lookupSettleMs: {
    // fal does not document how soon a new request shows in the list: "none found" is trusted only
    // this long after the lost submit; sooner, --resume says to wait (or --resubmit).
    value: 120_000,
    source: "ours; no published lag for requests/by-endpoint (assumed minutes at most)",
    asOf: "2026-12-02",
  },
  lookupMaxPages: {
    // 100 items a page (the API's max); a run's window holds a handful of requests.
    value: 5,
    source: "ours; requests/by-endpoint limit max 100 (same page)",
    asOf: "2026-12-02",
  },
} as const;
