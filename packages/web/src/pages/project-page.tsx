import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { parseDocument } from "yaml";
import { contractJsonSchema } from "@loraspec/core/contract/json-schema.js";
import type { DatasetSummary } from "@loraspec/core/contract/dataset-summary.js";
import type { ContractResponse } from "@loraspec/engine/server/api-types.js";
import { api, errorText } from "../api.js";
import { checkContractText, type LiveFinding } from "../contract-live.js";
import { SchemaForm, type JsonSchema } from "../components/schema-form.js";
import type { ProjectInfo } from "../app.js";
import { draftKey, readDraft, setUnsaved, writeDraft } from "../unsaved.js";
import { editYaml, type RemovedPairs, type YamlPath } from "../yaml-edit.js";

/** An unsaved contract edit, with the file text it was made against. */
interface ContractDraft {
  base: string;
  text: string;
}

/** Project: the contract as a schema-generated form beside its YAML, live findings and plan. */
export function ProjectPage({ project, onProjectChanged }: { project: ProjectInfo; onProjectChanged: () => void }) {
  const [saved, setSaved] = useState<string | undefined>();
  const [text, setText] = useState<string>("");
  const [status, setStatus] = useState<{ kind: "ok" | "error" | "info"; text: string } | undefined>();
  const schema = useMemo(() => contractJsonSchema() as JsonSchema, []);
  // Unsaved edits outlive this page (a tab switch unmounts it): kept per project, in this browser.
  const draftStore = draftKey("contract", project.id);
  const [staleDraft, setStaleDraft] = useState<ContractDraft>();
  const removedPairs = useRef<RemovedPairs>(new Map());

  useEffect(() => {
    if (!project.hasContract) return;
    api<ContractResponse>("/api/contract").then(
      (r) => {
        const draft = readDraft<ContractDraft>(draftStore);
        setSaved(r.yaml);
        if (draft && draft.base === r.yaml && draft.text !== r.yaml) setText(draft.text);
        else {
          setText(r.yaml);
          // The file changed on disk since the draft was made: offer it, never apply it silently.
          if (draft && draft.base !== r.yaml && draft.text !== r.yaml) setStaleDraft(draft);
        }
      },
      (e) => setStatus({ kind: "error", text: errorText(e) }),
    );
  }, [project.hasContract, draftStore]);

  useEffect(() => {
    if (saved === undefined) return;
    const dirty = text !== saved;
    if (dirty) writeDraft(draftStore, { base: saved, text } satisfies ContractDraft);
    else if (!staleDraft) writeDraft(draftStore, undefined);
    setUnsaved("contract", dirty);
  }, [text, saved, draftStore, staleDraft]);

  // The dataset scan comes from the server once; lint and plan then run here on every edit.
  // The reg folder's scan too (dataset.reg_path): the plan counts the reg images' share of each batch, as check's does.
  const [scans, setScans] = useState<{ dataset?: DatasetSummary; reg?: DatasetSummary }>({});
  useEffect(() => {
    if (!project.hasContract) return;
    api<{ summary: DatasetSummary | null; reg?: DatasetSummary | null }>("/api/dataset/summary").then((r) => setScans({ dataset: r.summary ?? undefined, reg: r.reg ?? undefined }), () => {});
  }, [project.hasContract, saved]);
  const dataset = scans.dataset;
  const local = useMemo(() => checkContractText(text, scans.dataset, scans.reg), [text, scans]);
  // Rules only the server can run (the English word list is too big to ship) arrive a moment later.
  const [serverFindings, setServerFindings] = useState<{ text: string; findings: LiveFinding[] }>();
  useEffect(() => {
    if (!local.contract || !project.capabilities.lint) return;
    const t = setTimeout(() => {
      api<{ findings: Array<{ rule: string; severity: LiveFinding["severity"]; field?: string; message: string; fix?: string; source?: string }> }>("/api/lint", {
        body: { yaml: text },
      }).then(
        (r) =>
          setServerFindings({
            text,
            findings: r.findings.map((f) => ({ severity: f.severity, code: f.rule, field: f.field, message: f.message, hint: f.fix, source: f.source })),
          }),
        () => {},
      );
    }, 700);
    return () => clearTimeout(t);
  }, [text, local.contract, project.capabilities.lint]);
  const check = useMemo(() => {
    if (!serverFindings || serverFindings.text !== text) return local;
    const have = new Set(local.findings.map((f) => f.code));
    const extra = serverFindings.findings.filter((f) => !have.has(f.code));
    return extra.length ? { ...local, findings: [...extra.filter((f) => f.severity === "error"), ...local.findings, ...extra.filter((f) => f.severity !== "error")] } : local;
  }, [local, serverFindings, text]);
  const doc = useMemo(() => parseDocument(text), [text]);
  const yamlOk = doc.errors.length === 0;
  const raw = (yamlOk ? (doc.toJS() as Record<string, unknown> | null) : null) ?? {};
  const problems = useMemo(() => {
    const m = new Map<string, { message: string; severity: "error" | "warning" }>();
    for (const f of check.findings) if (f.field && f.severity !== "info" && !m.has(f.field)) m.set(f.field, { message: f.message, severity: f.severity });
    return m;
  }, [check.findings]);

  // In place: only the edited value's characters change (key order, comments, flow style kept).
  const onFieldChange = useCallback((path: YamlPath, value: unknown, raw?: string) => {
    setText((current) => editYaml(current, { path, value, raw }, removedPairs.current));
  }, []);

  const save = async () => {
    try {
      // `base`: what this page read; the server refuses the write if the file changed since (E_FILE_CHANGED).
      await api("/api/contract", { method: "PUT", body: { yaml: text, base: saved ?? null } });
      setSaved(text);
      setStaleDraft(undefined);
      setStatus({ kind: "ok", text: "Saved lora.yaml" });
    } catch (e) {
      setStatus({ kind: "error", text: errorText(e) });
    }
  };

  if (!project.hasContract) return <CreateProject project={project} onCreated={onProjectChanged} />;
  const dirty = saved !== undefined && text !== saved;
  const errors = check.findings.filter((f) => f.severity === "error").length;

  return (
    <div className="page project-page">
      <div className="toolbar">
        <h2>{project.contractFile}</h2>
        <span className={`pill ${errors ? "pill-error" : "pill-ok"}`} data-testid="contract-state">
          {errors ? `${errors} problem${errors > 1 ? "s" : ""}` : "valid"}
        </span>
        {dirty ? <span className="muted">unsaved changes</span> : <span className="muted">saved</span>}
        <div className="spacer" />
        {status ? <span className={`status status-${status.kind}`}>{status.text}</span> : null}
        <button onClick={() => setText(saved ?? "")} disabled={!dirty}>
          Revert
        </button>
        <button className="primary" onClick={save} disabled={!dirty || errors > 0} title={errors ? "Fix the problems first" : "Write lora.yaml"}>
          Save
        </button>
      </div>
      {staleDraft ? (
        <div className="banner banner-warn" data-testid="stale-draft">
          An unsaved edit of {project.contractFile} from before the file changed on disk is kept in this browser.{" "}
          <button
            onClick={() => {
              setText(staleDraft.text);
              setStaleDraft(undefined);
            }}
          >
            Restore it
          </button>{" "}
          <button
            onClick={() => {
              writeDraft(draftStore, undefined);
              setStaleDraft(undefined);
            }}
          >
            Discard it
          </button>
        </div>
      ) : null}
      <div className="project-grid">
        <div className="panel form-panel">
          <div className="panel-title">Contract</div>
          {!yamlOk ? <div className="banner banner-error">The YAML has a syntax error; fix it on the right to use the form.</div> : null}
          <SchemaForm schema={schema} value={raw} problems={problems} onChange={onFieldChange} disabled={!yamlOk} />
        </div>
        <div className="panel yaml-panel">
          <div className="panel-title">YAML</div>
          <YamlEditor text={text} onChange={setText} findings={check.findings} />
        </div>
        <div className="side-column">
          <FindingsPanel findings={check.findings} />
          <PlanPanel check={check} />
        </div>
      </div>
    </div>
  );
}

function YamlEditor({ text, onChange, findings }: { text: string; onChange: (t: string) => void; findings: LiveFinding[] }) {
  const lines = text.split("\n").length;
  const bad = new Set(findings.filter((f) => f.line && f.severity === "error").map((f) => f.line!));
  const gutter = useRef<HTMLDivElement>(null);
  return (
    <div className="yaml-editor">
      <div className="gutter" ref={gutter} aria-hidden>
        {Array.from({ length: lines }, (_, i) => (
          <div key={i} className={bad.has(i + 1) ? "bad-line" : undefined}>
            {i + 1}
          </div>
        ))}
      </div>
      <textarea
        aria-label="contract YAML"
        spellCheck={false}
        value={text}
        onChange={(e) => onChange(e.target.value)}
        onScroll={(e) => {
          if (gutter.current) gutter.current.scrollTop = e.currentTarget.scrollTop;
        }}
      />
    </div>
  );
}

function FindingsPanel({ findings }: { findings: LiveFinding[] }) {
  return (
    <div className="panel findings-panel" data-testid="findings">
      <div className="panel-title">
        Findings <span className="count">{findings.length}</span>
      </div>
      {findings.length === 0 ? (
        <div className="empty ok-text">No problems found.</div>
      ) : (
        <ul className="findings">
          {findings.map((f, i) => (
            <li key={i} className={`finding sev-${f.severity}`}>
              <div className="finding-head">
                <span className={`sev sev-${f.severity}`}>{f.severity}</span>
                {f.field ? (
                  <button className="link field-link" onClick={() => focusField(f.field!)}>
                    {f.field}
                  </button>
                ) : null}
                {f.line ? <span className="muted">line {f.line}</span> : null}
                <span className="muted code">{f.code}</span>
              </div>
              <div className="finding-msg">{f.message}</div>
              {f.hint ? <div className="finding-hint">fix: {f.hint}</div> : null}
              {f.source ? <div className="finding-source">source: {f.source}</div> : null}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function focusField(field: string) {
  const el = document.querySelector<HTMLElement>(`[data-field="${CSS.escape(field)}"]`);
  el?.closest("details")?.setAttribute("open", "");
  el?.scrollIntoView({ block: "center" });
  el?.querySelector<HTMLElement>("input,select,textarea")?.focus();
}

export function PlanPanel({ check }: { check: ReturnType<typeof checkContractText> }) {
  const p = check.plan;
  // Only the settings the trainer is handed (core compile/trainer-receives.ts), as `loraspec plan` prints them.
  const shown = p?.receives.settings;
  return (
    <div className="panel plan-panel" data-testid="plan">
      <div className="panel-title">Plan</div>
      {!p ? (
        <div className="empty muted">{check.planError ?? "Fix the contract to see the plan."}</div>
      ) : (
        <>
          <dl className="kv">
            <dt>base</dt>
            <dd>{p.base.label}</dd>
            <dt>steps</dt>
            <dd title={p.stepsSource}>
              {p.steps.toLocaleString()} <span className="muted">({p.passesPerImage.toFixed(0)} passes x {p.images.count} images)</span>
            </dd>
            {shown?.learningRate ? (
              <>
                <dt>learning rate</dt>
                <dd title={p.learningRateSource}>{p.learningRate.toExponential(1)}</dd>
              </>
            ) : null}
            {shown?.resolution ? (
              <>
                <dt>resolution</dt>
                <dd>{p.resolution}px</dd>
              </>
            ) : null}
            {shown?.batch ? (
              <>
                <dt>batch</dt>
                <dd>
                  {p.batchSize} x {p.gradientAccumulation} accum x {p.gpus} GPU
                </dd>
              </>
            ) : null}
            {shown?.rank ? (
              <>
                <dt>rank / alpha</dt>
                <dd>
                  {p.rank} / {p.alpha}
                </dd>
              </>
            ) : null}
            {shown?.networkTargets ? (
              <>
                <dt>targets</dt>
                <dd title={`${p.networkTargets.why}\nsource: ${p.networkTargets.source}`}>{p.networkTargets.preset}</dd>
              </>
            ) : null}
            {p.networkCost && p.networkCost.type !== "lora" ? (
              <>
                <dt>adapter</dt>
                <dd title={`${p.networkCost.label}\nsource: ${p.networkCost.source}`}>
                  {p.networkCost.type} <span className="muted">x {p.networkCost.stepTimeFactor.toFixed(2)} step time{p.networkCost.measured ? "" : " (estimate)"}</span>
                </dd>
              </>
            ) : null}
            {shown?.gpu ? (
              <>
                <dt>VRAM</dt>
                <dd title={p.vram.assumptions.join("\n")}>
                  <b>{p.vram.totalGb.toFixed(1)} GB</b> <span className="muted">peak per GPU</span>
                </dd>
              </>
            ) : null}
            <dt>time</dt>
            <dd title={p.selected?.source}>
              {p.selected ? `${formatHours(p.selected.hours)} on ${p.selected.label}` : shown?.gpu ? "choose hardware.gpu" : "chosen by fal"}
            </dd>
            <dt>cost</dt>
            <dd title={p.cost.source}>{p.cost.usd === undefined ? <span className="muted">{p.cost.basis}</span> : `$${p.cost.usd.toFixed(2)}`}</dd>
            {shown?.checkpoints ? (
              <>
                <dt>checkpoints</dt>
                <dd>{p.checkpoints}</dd>
              </>
            ) : null}
          </dl>
          {p.receives.why ? <div className="muted" data-testid="plan-not-sent" title={p.receives.source}>not sent: {p.receives.why}</div> : null}
          {shown?.gpu ? (
            <table className="mini-table">
              <thead>
                <tr>
                  <th>GPU</th>
                  <th>s/step</th>
                  <th>time</th>
                </tr>
              </thead>
              <tbody>
                {p.walltime.map((w) => (
                  <tr key={w.gpu} className={p.selected?.gpu === w.gpu ? "selected" : undefined} title={w.source}>
                    <td>{w.label}</td>
                    <td>{w.secondsPerStep.toFixed(2)}</td>
                    <td>{formatHours(w.hours)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
          {p.notes.length ? (
            <ul className="notes">
              {p.notes.map((n, i) => (
                <li key={i}>{n}</li>
              ))}
            </ul>
          ) : null}
        </>
      )}
    </div>
  );
}

function formatHours(h: number): string {
  if (h < 1) return `${Math.max(1, Math.round(h * 60))} min`;
  return `${h.toFixed(1)} h`;
}

function CreateProject({ project, onCreated }: { project: ProjectInfo; onCreated: () => void }) {
  const [error, setError] = useState<string>();
  const create = async (example: string) => {
    try {
      await api("/api/project/from-example", { body: { example } });
      onCreated();
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <div className="page">
      <div className="panel create-panel">
        <h2>No {project.contractFile} in this folder yet</h2>
        <p className="muted">Start from an example contract (its sample dataset comes with it), or run `loraspec init` in a terminal.</p>
        {project.examples.length === 0 ? <p>No examples are available.</p> : null}
        <ul className="examples">
          {project.examples.map((name) => (
            <li key={name}>
              <code>{name}</code>
              <button className="primary" onClick={() => create(name)}>
                Create from {name}
              </button>
            </li>
          ))}
        </ul>
        {error ? <div className="banner banner-error">{error}</div> : null}
      </div>
    </div>
  );
}
