import { useCallback, useEffect, useRef, useState } from "react";
import type { LoraspecEvent } from "@loraspec/core/events.js";
// The server's own row type (type-only: nothing from the engine reaches the browser bundle).
import type { RunLogResponse, RunView as Run } from "@loraspec/engine/server/api-types.js";
import { api, errorText, fileUrl } from "../api.js";
import type { ProjectInfo } from "../app.js";
import { LossChart, type LossSeries } from "../components/loss-chart.js";
import { SampleStrip, type SampleImage } from "../components/sample-strip.js";


const ACTIVE = new Set(["queued", "starting", "running"]);
const RESUMABLE = new Set(["interrupted", "failed", "cancelled"]);

/** Runs: the queue and history, and one run live (progress, loss, samples, log). */
export function RunsPage({ project, selected }: { project: ProjectInfo; selected?: string }) {
  const [runs, setRuns] = useState<Run[]>([]);
  const [error, setError] = useState<string>();
  // A refused start has its own state: the list's refresh every 2 s clears `error` and must not take this with it.
  const [startError, setStartError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const load = useCallback(() => {
    api<{ runs: Run[] }>("/api/runs").then(
      (r) => {
        setRuns(r.runs);
        setError(undefined);
      },
      (e) => setError(errorText(e)),
    );
  }, []);
  useEffect(() => {
    load();
    const t = setInterval(load, 2000); // the list is cheap; the selected run streams over SSE
    return () => clearInterval(t);
  }, [load]);

  const current = runs.find((r) => r.id === selected) ?? (selected ? undefined : runs[0]);

  const start = async () => {
    setBusy(true);
    setStartError(undefined);
    try {
      const { id } = await api<{ id: string }>("/api/runs", { method: "POST" });
      location.hash = `#/runs/${encodeURIComponent(id)}`;
      load();
    } catch (e) {
      setStartError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="page runs-page">
      <div className="toolbar">
        <h2>Runs</h2>
        <span className="muted">{runs.length} total</span>
        <div className="spacer" />
        {startError ? (
          <span className="status status-error" data-testid="start-error">
            {startError}
          </span>
        ) : null}
        {error ? <span className="status status-error">{error}</span> : null}
        <button className="primary" onClick={start} disabled={busy || !project.capabilities.runs || !project.hasContract}>
          Start run
        </button>
      </div>
      <div className="runs-layout">
        <div className="panel runs-list">
          <table className="table">
            <thead>
              <tr>
                <th>run</th>
                <th>state</th>
                <th>step</th>
                <th>started</th>
              </tr>
            </thead>
            <tbody>
              {runs.map((r) => (
                <tr key={r.id} className={current?.id === r.id ? "selected" : undefined} onClick={() => (location.hash = `#/runs/${encodeURIComponent(r.id)}`)}>
                  <td className="mono" title={r.id}>
                    {r.name ?? r.id.slice(-8)}
                  </td>
                  <td>
                    <StateBadge state={r.state} />
                    {/* A run-folder file too large to read (job.json, supervisor.pid), named by the server. */}
                    {r.problem ? (
                      <span className="tag tag-warn" title={r.problem.message}>
                        {r.problem.code}
                      </span>
                    ) : null}
                  </td>
                  <td className="num">{r.step != null ? `${r.step}/${r.totalSteps ?? "?"}` : "—"}</td>
                  <td className="muted">{formatTime(r.startedAt ?? r.createdAt)}</td>
                </tr>
              ))}
              {runs.length === 0 ? (
                <tr>
                  <td colSpan={4} className="empty muted">
                    No runs yet.
                  </td>
                </tr>
              ) : null}
            </tbody>
          </table>
        </div>
        {current ? (
          <RunDetail key={current.id} run={current} onChanged={load} canValidate={Boolean(project.capabilities.validation)} />
        ) : (
          <div className="panel empty muted">Select a run.</div>
        )}
      </div>
    </div>
  );
}

function StateBadge({ state }: { state: string }) {
  return <span className={`state state-${state}`}>{state}</span>;
}

interface Live {
  step?: number;
  total?: number;
  rate?: number;
  eta?: number;
  phase?: string;
  message?: string;
  error?: { code: string; message: string; hint?: string };
  done?: boolean;
}

function RunDetail({ run, onChanged, canValidate }: { run: Run; onChanged: () => void; canValidate: boolean }) {
  const [loss, setLoss] = useState<LossSeries>({ steps: [], loss: [], avgLoss: [] });
  const [live, setLive] = useState<Live>({});
  const [samples, setSamples] = useState<SampleImage[]>([]);
  function loadSamples() {
    api<{ samples: SampleImage[] }>(`/api/runs/${encodeURIComponent(run.id)}/samples`).then(
      (r) => setSamples(r.samples),
      () => {},
    );
  }
  const [log, setLog] = useState<string[]>([]);
  const [state, setState] = useState(run.state);
  const [error, setError] = useState<string>();
  const lossMap = useRef(new Map<number, { loss: number; avg: number | null }>());
  const logBox = useRef<HTMLPreElement>(null);

  // History first, then live events. The event stream replays the log from the start, so
  // the chart is rebuilt from it; steps replayed after a resume overwrite their old value.
  useEffect(() => {
    lossMap.current = new Map();
    let sampleTimer: ReturnType<typeof setTimeout> | undefined;
    const refreshSamples = () => {
      sampleTimer ??= setTimeout(() => {
        sampleTimer = undefined;
        loadSamples();
      }, 500);
    };
    const source = new EventSource(`/api/runs/${encodeURIComponent(run.id)}/events`);
    let pending = false;
    const flush = () => {
      pending = false;
      const entries = [...lossMap.current.entries()].sort((a, b) => a[0] - b[0]);
      setLoss({ steps: entries.map((e) => e[0]), loss: entries.map((e) => e[1].loss), avgLoss: entries.map((e) => e[1].avg) });
    };
    source.addEventListener("event", (m) => {
      const e = JSON.parse((m as MessageEvent).data) as LoraspecEvent;
      switch (e.type) {
        case "loss":
          lossMap.current.set(e.step, { loss: e.loss ?? Number.NaN, avg: e.avgLoss ?? null });
          if (!pending) {
            pending = true;
            requestAnimationFrame(flush);
          }
          break;
        case "progress":
          if (e.task === "train" || e.task === "steps") setLive((l) => ({ ...l, step: e.current, total: e.total, rate: e.rate, eta: e.eta, message: e.message }));
          break;
        case "phase":
          // A new attempt (start, resume) clears the previous attempt's error, speed and ETA:
          // they are measured again once it trains, not carried over while it loads.
          setLive((l) => {
            const fresh = e.name === "start" || e.name === "resume";
            return {
              ...l,
              phase: e.name + (e.message ? `: ${e.message}` : ""),
              error: fresh ? undefined : l.error,
              rate: fresh ? undefined : l.rate,
              eta: fresh ? undefined : l.eta,
            };
          });
          break;
        case "sample":
          // The event's path is the trainer's; the server lists it checked and project-relative.
          refreshSamples();
          break;
        case "error":
          setLive((l) => ({ ...l, error: { code: e.code, message: e.message, hint: e.hint } }));
          break;
        case "done":
          setLive((l) => ({ ...l, done: true, error: undefined }));
          break;
        default:
          break;
      }
    });
    source.addEventListener("state", (m) => setState((JSON.parse((m as MessageEvent).data) as { state: string }).state));
    source.addEventListener("end", () => source.close());
    return () => {
      source.close();
      if (sampleTimer) clearTimeout(sampleTimer);
    };
    // A resume is a new attempt: reconnect and replay the whole log, so the chart keeps the
    // earlier attempts' points and steps trained again replace their old values.
  }, [run.id, run.attempts]);

  useEffect(loadSamples, [run.id]);

  useEffect(() => {
    let stopped = false;
    const poll = () =>
      api<RunLogResponse>(`/api/runs/${encodeURIComponent(run.id)}/log?lines=300`).then(
        (r) => {
          if (stopped) return;
          setLog(r.lines);
          const el = logBox.current;
          if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 40) requestAnimationFrame(() => (el.scrollTop = el.scrollHeight));
        },
        () => {},
      );
    poll();
    const t = setInterval(() => ACTIVE.has(state) && poll(), 2000);
    return () => {
      stopped = true;
      clearInterval(t);
    };
  }, [run.id, state]);

  // A state change (finished, stopped) brings the row's output path and error from the store.
  useEffect(() => {
    if (state !== run.state) onChanged();
  }, [state, run.state, onChanged]);

  const act = async (what: "stop" | "resume") => {
    try {
      const r = await api<{ id?: string }>(`/api/runs/${encodeURIComponent(run.id)}/${what}`, { method: "POST" });
      if (what === "resume" && r.id && r.id !== run.id) location.hash = `#/runs/${encodeURIComponent(r.id)}`;
      onChanged();
    } catch (e) {
      setError(errorText(e));
    }
  };

  const step = live.step ?? run.step ?? undefined;
  const total = live.total ?? run.totalSteps ?? undefined;
  const pct = step !== undefined && total ? Math.min(100, (100 * step) / total) : 0;
  const lastLoss = loss.loss.at(-1);

  return (
    <div className="run-detail">
      <div className="panel run-head">
        <div className="run-title">
          <span className="mono">{run.id}</span> <StateBadge state={state} />
          {run.attempts && run.attempts > 1 ? <span className="muted">attempt {run.attempts}</span> : null}
          <span className="muted">
            {run.trainer ?? ""} {run.base ? `· ${run.base}` : ""}
          </span>
          <div className="spacer" />
          {error ? <span className="status status-error">{error}</span> : null}
          {canValidate ? <ValidateButton run={run} state={state} /> : null}
          <button onClick={() => act("stop")} disabled={!ACTIVE.has(state)}>
            Stop
          </button>
          <button onClick={() => act("resume")} disabled={!RESUMABLE.has(state)}>
            Resume
          </button>
        </div>
        <div className="progress-row">
          <div className="progress" data-testid="run-progress" data-step={step ?? 0}>
            <div className="progress-fill" style={{ width: `${pct}%` }} />
          </div>
          <span className="num">
            {step ?? 0}/{total ?? "?"} steps
          </span>
        </div>
        <div className="stats">
          {/* Speed and ETA are of the attempt running now; a stopped or finished run has neither. */}
          <Stat label="it/s" value={ACTIVE.has(state) && live.rate !== undefined ? live.rate.toFixed(2) : "—"} />
          <Stat label="ETA" value={ACTIVE.has(state) && live.eta !== undefined ? formatSeconds(live.eta) : "—"} />
          <Stat label="loss" value={lastLoss !== undefined ? lastLoss.toFixed(4) : "—"} />
          <Stat label="phase" value={live.phase ?? "—"} />
          {run.outputPath ? (
            <Stat
              label="output"
              value={
                <a href={fileUrl(run.outputPath)} download>
                  {run.outputPath.split("/").pop()}
                </a>
              }
            />
          ) : null}
        </div>
        {(live.error || run.errorMessage) && RESUMABLE.has(state) ? (
          <div className="banner banner-error">
            <b>{live.error?.code ?? run.errorCode}</b> {live.error?.message ?? run.errorMessage}
            {live.error?.hint ? <div>fix: {live.error.hint}</div> : null}
          </div>
        ) : null}
      </div>
      <div className="run-body">
        <div className="panel">
          <div className="panel-title">
            Loss <span className="count">{loss.steps.length} points</span>
          </div>
          <LossChart data={loss} />
        </div>
        <div className="panel samples-panel">
          <div className="panel-title">
            Samples <span className="count">{samples.length}</span>
          </div>
          <SampleStrip samples={samples} />
        </div>
        <div className="panel log-panel">
          <div className="panel-title">Log</div>
          <pre className="log" ref={logBox} data-testid="log-tail">
            {log.length ? log.join("\n") : run.lastLogLine ?? ""}
          </pre>
        </div>
      </div>
    </div>
  );
}

function Stat({ label, value }: { label: string; value: React.ReactNode }) {
  return (
    <div className="stat">
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value}</div>
    </div>
  );
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "—";
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}

function formatTime(iso?: string | null): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${d.toLocaleDateString(undefined, { month: "short", day: "numeric" })} ${d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", hour12: false })}`;
}

/** Validate a finished run (or each of its checkpoints) against the contract's rubric. */
function ValidateButton({ run, state }: { run: Run; state: string }) {
  const [checkpoints, setCheckpoints] = useState(false);
  const [progress, setProgress] = useState<{ text: string; pct?: number; error?: string; done?: boolean }>();
  const follow = useCallback(() => {
    const source = new EventSource(`/api/runs/${encodeURIComponent(run.id)}/validate/events`);
    source.addEventListener("event", (m) => {
      const e = JSON.parse((m as MessageEvent).data) as LoraspecEvent;
      if (e.type === "progress") setProgress((p) => ({ ...p, text: `${e.task} ${e.current}/${e.total}`, pct: e.total ? (100 * e.current) / e.total : undefined }));
      else if (e.type === "phase") setProgress((p) => ({ ...p, text: e.message ?? e.name }));
      else if (e.type === "error") setProgress((p) => ({ ...p, text: "failed", error: `${e.code}: ${e.message}` }));
      else if (e.type === "done") setProgress((p) => ({ ...p, text: "report written", done: true, pct: 100 }));
    });
    source.addEventListener("end", () => source.close());
  }, [run.id]);
  const start = async () => {
    setProgress({ text: "starting" });
    try {
      await api(`/api/runs/${encodeURIComponent(run.id)}/validate`, { body: { checkpoints } });
      follow();
    } catch (e) {
      setProgress({ text: "failed", error: errorText(e) });
    }
  };
  const busy = progress !== undefined && !progress.done && !progress.error;
  return (
    <span className="validate-box">
      {progress ? (
        <span className={`small ${progress.error ? "status-error" : "muted"}`} title={progress.error} data-testid="validate-progress">
          {progress.error ?? progress.text}
          {progress.done ? (
            <>
              {" "}
              <a href="#/validation">open report</a>
            </>
          ) : null}
        </span>
      ) : null}
      <label className="small muted check-inline" title="Sample and score each saved checkpoint to find the best one">
        <input type="checkbox" checked={checkpoints} onChange={(e) => setCheckpoints(e.target.checked)} /> checkpoints
      </label>
      <button onClick={start} disabled={busy || ACTIVE.has(state)}>
        Validate
      </button>
    </span>
  );
}
