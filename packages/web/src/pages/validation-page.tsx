import { useEffect, useState } from "react";
import type { ValidationReport } from "@loraspec/engine/server/api-types.js";
import { api, errorText, fileUrl } from "../api.js";

interface Verdicts {
  status?: string;
  weights?: Array<{ key: string; candidate: string; step?: number; weight: number; status: string; checks: Array<{ check: string; title: string; status: string }> }>;
  best?: { key: string; candidate: string; step?: number; weight: number };
  warnings?: Array<{ code: string; message: string }>;
}
/** The server's report entry, with the summary this page reads from validation.json. */
interface Report extends ValidationReport {
  summary?: Verdicts & { verdicts?: Verdicts };
}

/** Validation: the reports (grids and verdicts), one at a time or two side by side. */
export function ValidationPage() {
  const [reports, setReports] = useState<Report[]>();
  const [error, setError] = useState<string>();
  const [selected, setSelected] = useState<string>();
  const [compare, setCompare] = useState<string>();

  useEffect(() => {
    api<{ reports: Report[] }>("/api/validation").then(
      (r) => {
        setReports(r.reports);
        if (r.reports[0]) setSelected((s) => s ?? r.reports[0]!.path);
      },
      (e) => setError(errorText(e)),
    );
  }, []);

  if (error) return <div className="page"><div className="banner banner-error">{error}</div></div>;
  if (!reports) return <div className="page muted">Loading...</div>;
  const current = reports.find((r) => r.path === selected);
  const other = reports.find((r) => r.path === compare);
  const verdicts = current ? (current.summary?.verdicts ?? current.summary) : undefined;

  return (
    <div className="page validation-page">
      <div className="toolbar">
        <h2>Validation</h2>
        <span className="muted">{reports.length} report(s)</span>
        <div className="spacer" />
        <label className="muted small">
          compare with{" "}
          <select value={compare ?? ""} onChange={(e) => setCompare(e.target.value || undefined)} aria-label="compare with">
            <option value="">—</option>
            {reports
              .filter((r) => r.path !== selected)
              .map((r) => (
                <option key={r.path} value={r.path}>
                  {shortFolder(r.folder)}
                </option>
              ))}
          </select>
        </label>
      </div>
      <div className="validation-layout">
        <div className="panel report-list">
          <div className="panel-title">Reports</div>
          {reports.length === 0 ? <div className="empty muted">No validation reports yet. Run `loraspec validate` after a run.</div> : null}
          <ul className="list">
            {reports.map((r) => {
              const v = r.summary?.verdicts ?? r.summary;
              return (
                <li key={r.path} className={r.path === selected ? "selected" : undefined} onClick={() => setSelected(r.path)}>
                  <div className="mono small" title={r.folder}>
                    {shortFolder(r.folder)}
                  </div>
                  <div className="muted small">
                    {new Date(r.mtime).toLocaleString()} {v?.status ? <span className={`verdict verdict-${v.status}`}>{v.status}</span> : null}
                  </div>
                </li>
              );
            })}
          </ul>
        </div>
        <div className="report-main">
          {verdicts?.weights?.length ? <VerdictTable verdicts={verdicts} /> : null}
          <div className={`report-frames${other ? " two" : ""}`}>
            {/* Reports may come from anywhere: sandboxed with no permissions (no scripts, an opaque
                origin); the server adds the same sandbox as a CSP. They need no script. */}
            {current ? <iframe title="validation report" sandbox="" src={fileUrl(current.path)} data-testid="report-frame" /> : null}
            {other ? <iframe title="compared report" sandbox="" src={fileUrl(other.path)} /> : null}
          </div>
        </div>
      </div>
    </div>
  );
}

/** Checkpoints x weights against the rubric's checks: the comparison the report is for. */
function VerdictTable({ verdicts }: { verdicts: Verdicts }) {
  const checks = [...new Set((verdicts.weights ?? []).flatMap((w) => w.checks.map((c) => c.check)))];
  return (
    <div className="panel verdicts-panel">
      <div className="panel-title">
        Verdict <span className={`verdict verdict-${verdicts.status}`}>{verdicts.status}</span>
        {verdicts.best ? (
          <span className="muted small">
            best: {verdicts.best.candidate} at weight {verdicts.best.weight}
          </span>
        ) : null}
      </div>
      <table className="table compact">
        <thead>
          <tr>
            <th>checkpoint</th>
            <th>weight</th>
            {checks.map((c) => (
              <th key={c}>{c}</th>
            ))}
            <th>overall</th>
          </tr>
        </thead>
        <tbody>
          {(verdicts.weights ?? []).map((w) => (
            <tr key={w.key} className={verdicts.best?.key === w.key ? "selected" : undefined}>
              <td className="mono">{w.candidate}</td>
              <td className="num">{w.weight}</td>
              {checks.map((c) => {
                const v = w.checks.find((x) => x.check === c);
                return <td key={c}>{v ? <span className={`verdict verdict-${v.status}`}>{v.status}</span> : "—"}</td>;
              })}
              <td>
                <span className={`verdict verdict-${w.status}`}>{w.status}</span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {verdicts.warnings?.length ? (
        <ul className="notes">
          {verdicts.warnings.map((w, i) => (
            <li key={i}>{w.message}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

/** `.loraspec/runs/<id>/validation` -> `run …<last 8 of id> / validation`. */
function shortFolder(folder: string): string {
  const m = folder.match(/\.loraspec\/runs\/([^/]+)\/(.+)$/);
  return m ? `run …${m[1]!.slice(-8)} / ${m[2]}` : folder;
}
