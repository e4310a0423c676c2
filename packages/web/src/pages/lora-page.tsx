import { useEffect, useState } from "react";
import type { FileEntry, LoraFilesResponse } from "@loraspec/engine/server/api-types.js";
import { api, errorText } from "../api.js";
import type { ProjectInfo } from "../app.js";

type LoraFile = FileEntry;
interface Inspect {
  file?: string;
  tensors?: number;
  bytes?: number;
  format?: string;
  traits?: string[];
  architecture?: { id: string; title: string };
  modules?: Array<{ key: string; native: string; diffusers?: string; component: string; rank: number; alpha?: number; scale: number }>;
  coverage?: Array<{ component: string; touched: number; defaultTargets: number; defaultTouched: number; total: number }>;
  targets?: { preset: string; covered: number; blockModules: number; outside: number };
  ranks?: Record<string, number>;
  dtypes?: Record<string, number>;
  components?: string[];
  triggerWords?: string[];
  nonFinite?: Array<{ tensor: string; nan: number; inf: number }>;
  unplaced?: string[];
  nonLora?: string[];
}

const FORMATS = ["diffusers", "kohya", "comfy"];

/** LoRA files: inspect (every key accounted for), convert, merge with weights. */
export function LoraPage({ project }: { project: ProjectInfo }) {
  const [files, setFiles] = useState<LoraFile[]>([]);
  const [selected, setSelected] = useState<string>();
  const [report, setReport] = useState<Inspect>();
  const [status, setStatus] = useState<{ kind: "ok" | "error" | "info"; text: string }>();
  const [to, setTo] = useState("diffusers");
  const [mergeInputs, setMergeInputs] = useState<Array<{ path: string; weight: number }>>([]);
  const [mergeOut, setMergeOut] = useState("merged.safetensors");
  const [method, setMethod] = useState("cat");
  const enabled = project.capabilities.lora;

  const load = () => api<LoraFilesResponse>("/api/lora/files").then((r) => setFiles(r.files), (e) => setStatus({ kind: "error", text: errorText(e) }));
  useEffect(() => {
    load();
  }, []);

  const inspect = async (path: string) => {
    setSelected(path);
    setReport(undefined);
    if (!enabled) return;
    try {
      const r = await api<{ result: Inspect }>("/api/lora/inspect", { body: { path } });
      setReport(r.result);
      setStatus(undefined);
    } catch (e) {
      setStatus({ kind: "error", text: errorText(e) });
    }
  };

  const convert = async () => {
    if (!selected) return;
    const out = selected.replace(/\.safetensors$/, `.${to}.safetensors`);
    try {
      await api("/api/lora/convert", { body: { path: selected, to, out } });
      setStatus({ kind: "ok", text: `Wrote ${out}` });
      load();
    } catch (e) {
      setStatus({ kind: "error", text: errorText(e) });
    }
  };

  const merge = async () => {
    try {
      const r = await api<{ out: string; result?: { warnings?: string[] } }>("/api/lora/merge", { body: { inputs: mergeInputs, out: mergeOut, method } });
      const warnings = r.result?.warnings ?? [];
      setStatus(warnings.length ? { kind: "info", text: `Wrote ${r.out}; ${warnings.join("; ")}` } : { kind: "ok", text: `Wrote ${r.out}` });
      load();
    } catch (e) {
      setStatus({ kind: "error", text: errorText(e) });
    }
  };

  const total = report?.tensors ?? 0;
  const placed = (report?.modules?.length ?? 0);
  const sumWeights = mergeInputs.reduce((a, b) => a + b.weight, 0);
  const action = mergeAction(mergeInputs.length, method);

  return (
    <div className="page lora-page">
      <div className="toolbar">
        <h2>LoRA files</h2>
        <span className="muted">{files.length} .safetensors in the project</span>
        <div className="spacer" />
        {status ? <span className={`status status-${status.kind}`}>{status.text}</span> : null}
        {!enabled ? <span className="muted">LoRA tools are not available in this server</span> : null}
      </div>
      <div className="lora-layout">
        <div className="panel">
          <div className="panel-title">Files</div>
          <table className="table compact">
            <tbody>
              {files.map((f) => (
                <tr key={f.path} className={f.path === selected ? "selected" : undefined} onClick={() => inspect(f.path)}>
                  <td className="mono small" title={f.path}>
                    {shortPath(f.path)}
                  </td>
                  <td className="num muted">{formatBytes(f.bytes)}</td>
                  <td>
                    <button
                      className="small-btn"
                      onClick={(e) => {
                        e.stopPropagation();
                        setMergeInputs((m) => (m.some((x) => x.path === f.path) ? m : [...m, { path: f.path, weight: 0.5 }]));
                      }}
                    >
                      + merge
                    </button>
                  </td>
                </tr>
              ))}
              {files.length === 0 ? (
                <tr>
                  <td className="empty muted">No LoRA files yet.</td>
                </tr>
              ) : null}
            </tbody>
          </table>
          <div className="panel-title sub">Merge</div>
          {mergeInputs.length === 0 ? <div className="muted small pad">Add files with “+ merge”.</div> : null}
          {mergeInputs.map((m, i) => (
            <div key={m.path} className="merge-row">
              <span className="mono small" title={m.path}>
                {shortPath(m.path)}
              </span>
              <input
                type="number"
                step="0.05"
                value={m.weight}
                aria-label={`weight of ${m.path}`}
                onChange={(e) => setMergeInputs((all) => all.map((x, j) => (j === i ? { ...x, weight: Number(e.target.value) } : x)))}
              />
              <button className="small-btn" onClick={() => setMergeInputs((all) => all.filter((_, j) => j !== i))}>
                ×
              </button>
            </div>
          ))}
          {mergeInputs.length ? (
            <div className="merge-row">
              <select value={method} onChange={(e) => setMethod(e.target.value)} aria-label="merge method" title="cat is exact (ranks add up); linear, ties, dare and svd run in the worker">
                {["cat", "linear", "ties", "dare", "svd"].map((m) => (
                  <option key={m}>{m}</option>
                ))}
              </select>
              <input value={mergeOut} onChange={(e) => setMergeOut(e.target.value)} aria-label="merge output" />
              {mergeInputs.length > 1 ? <span className={`small ${sumWeights > 1 ? "warn-text" : "muted"}`}>Σ {sumWeights.toFixed(2)}</span> : null}
              <button className="primary" onClick={merge} disabled={!enabled || !!action.blocked} title={action.blocked ?? action.title}>
                {action.label}
              </button>
            </div>
          ) : null}
        </div>
        <div className="panel inspect-panel">
          <div className="panel-title">
            <span className="mono" title={selected}>
              {selected ? shortPath(selected) : "Inspect"}
            </span>
            {selected ? (
              <span className="inline-controls">
                convert to{" "}
                <select value={to} onChange={(e) => setTo(e.target.value)}>
                  {FORMATS.map((f) => (
                    <option key={f}>{f}</option>
                  ))}
                </select>
                <button onClick={convert} disabled={!enabled}>
                  Convert
                </button>
              </span>
            ) : null}
          </div>
          {!report ? (
            <div className="empty muted">{selected ? (enabled ? "Reading..." : "") : "Select a file to inspect it."}</div>
          ) : (
            <div className="inspect">
              <dl className="kv">
                <dt>format</dt>
                <dd>
                  {report.format} {report.traits?.length ? <span className="muted">({report.traits.join(", ")})</span> : null}
                </dd>
                <dt>architecture</dt>
                <dd>{report.architecture?.title ?? "unknown"}</dd>
                <dt>tensors</dt>
                <dd>
                  {total} · dtypes {Object.entries(report.dtypes ?? {}).map(([k, v]) => `${k}×${v}`).join(", ")}
                </dd>
                <dt>ranks</dt>
                <dd>{Object.entries(report.ranks ?? {}).map(([k, v]) => `r${k}×${v}`).join(", ")}</dd>
                <dt>trigger words</dt>
                <dd>{report.triggerWords?.join(", ") || "—"}</dd>
              </dl>
              <div className={`accounted ${report.unplaced?.length ? "bad" : "good"}`} data-testid="key-accounting">
                {total} tensors: {placed} modules placed · {report.unplaced?.length ?? 0} unplaced · {report.nonLora?.length ?? 0} non-LoRA
                {report.nonFinite?.length ? ` · ${report.nonFinite.length} tensors with NaN/Inf` : ""}
              </div>
              {report.targets ? (
                <div className="muted" data-testid="target-coverage">
                  targets: <b>{report.targets.preset}</b>, {report.targets.covered}/{report.targets.blockModules} modules of the transformer blocks
                  {report.targets.outside ? ` + ${report.targets.outside} outside them` : ""}
                </div>
              ) : null}
              {report.coverage?.length ? (
                <table className="table compact">
                  <thead>
                    <tr>
                      <th>component</th>
                      <th>touched</th>
                      <th>default targets</th>
                      <th>of total</th>
                    </tr>
                  </thead>
                  <tbody>
                    {report.coverage.map((c) => (
                      <tr key={c.component}>
                        <td>{c.component}</td>
                        <td className="num">{c.touched}</td>
                        <td className="num">
                          {c.defaultTouched}/{c.defaultTargets}
                        </td>
                        <td className="num">{c.total}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : null}
              {report.unplaced?.length ? <KeyList title="Unplaced keys" keys={report.unplaced} /> : null}
              {report.nonLora?.length ? <KeyList title="Non-LoRA keys" keys={report.nonLora} /> : null}
              <details>
                <summary>{report.modules?.length ?? 0} modules</summary>
                <table className="table compact mono small">
                  <tbody>
                    {(report.modules ?? []).slice(0, 500).map((m) => (
                      <tr key={m.key}>
                        <td>{m.diffusers ?? m.native}</td>
                        <td>{m.component}</td>
                        <td className="num">r{m.rank}</td>
                        <td className="num">{m.scale.toFixed(2)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </details>
            </div>
          )}
        </div>
      </div>
    </div>
  );
}

function KeyList({ title, keys }: { title: string; keys: string[] }) {
  return (
    <details open>
      <summary>
        {title} ({keys.length})
      </summary>
      <ul className="mono small keylist">
        {keys.slice(0, 200).map((k) => (
          <li key={k}>{k}</li>
        ))}
      </ul>
    </details>
  );
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

/** `.loraspec/runs/<ulid>/output/x` -> `run …<last 8>/output/x`: the id's tail is enough to tell runs apart. */
function shortPath(path: string): string {
  const m = path.match(/^\.loraspec\/runs\/([^/]+)\/(.+)$/);
  return m ? `run …${m[1]!.slice(-8)}/${m[2]}` : path;
}

/**
 * What the merge button does with `count` files: two or more merge; one file with cat is scaled (its delta
 * x the weight, what `loraspec merge X:S` writes); one file with another method is refused, as the CLI refuses it.
 */
export function mergeAction(count: number, method: string): { label: string; title?: string; blocked?: string } {
  if (count === 0) return { label: "Merge", blocked: "add files with + merge" };
  if (count > 1) return { label: "Merge" };
  if (method !== "cat") return { label: "Scale", blocked: `one file is scaled with cat (its delta x the weight); ${method} merges two or more` };
  return { label: "Scale", title: "write this LoRA with its delta x the weight (same keys, rank and alpha)" };
}
