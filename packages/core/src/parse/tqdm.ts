/** One tqdm bar line: `desc:  33%|███▎      | 2/6 [00:06<00:13,  3.42s/it, k=v, ...]`. */
export interface TqdmLine {
  desc: string;
  current: number;
  total: number;
  elapsedSeconds?: number;
  etaSeconds?: number;
  /** Items per second (tqdm prints s/it when slower than 1 it/s; inverted here). */
  rate?: number;
  /** Everything after the rate inside the brackets (`avr_loss=0.3`, `lr: 1.0e-04 loss: 4.1e-01`). */
  postfix: string;
}

// The bar characters differ by terminal (unicode blocks or ascii '#'), so anything but '|' is allowed;
// text after the closing ']' is ignored (a log line can follow a bar without a newline).
const TQDM = /(?:^|\r)\s*(?<desc>[^|\r]*?):?\s*(?<pct>\d{1,3})%\|[^|]*\|\s*(?<n>\d+)\/(?<total>\d+)\s*\[(?<elapsed>[\d:]+)<(?<eta>[\d:?]+),\s*(?<rate>[\d.]+|\?)(?<unit>s\/it|it\/s)(?:,\s*(?<postfix>[^\]]*))?\]/;

export function parseTqdmLine(line: string): TqdmLine | undefined {
  const m = TQDM.exec(line);
  if (!m?.groups) return undefined;
  const g = m.groups;
  const rateValue = g.rate === "?" ? undefined : Number(g.rate);
  const rate = rateValue === undefined || rateValue === 0 ? undefined : g.unit === "s/it" ? 1 / rateValue : rateValue;
  return {
    desc: (g.desc ?? "").trim(),
    current: Number(g.n),
    total: Number(g.total),
    elapsedSeconds: clockToSeconds(g.elapsed),
    etaSeconds: clockToSeconds(g.eta),
    rate,
    postfix: (g.postfix ?? "").trim(),
  };
}

/** `01:02:03` / `02:03` -> seconds; `?` -> undefined. */
export function clockToSeconds(clock: string | undefined): number | undefined {
  if (!clock || clock.includes("?")) return undefined;
  return clock.split(":").reduce((acc, part) => acc * 60 + Number(part), 0);
}

/** Parses a number tqdm or a trainer printed (`3.39`, `4.167e-01`, `nan`, `inf`). */
export function parseLogNumber(text: string): number {
  const t = text.trim().toLowerCase();
  if (t === "nan" || t === "-nan") return Number.NaN;
  if (t === "inf" || t === "+inf") return Number.POSITIVE_INFINITY;
  if (t === "-inf") return Number.NEGATIVE_INFINITY;
  return Number(t);
}

/** Removes ANSI escape sequences (colours, cursor moves) a terminal-minded trainer printed. */
export function stripAnsi(line: string): string {
  return line.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "");
}
